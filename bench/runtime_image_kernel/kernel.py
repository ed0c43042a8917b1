"""Benchmark EDI kernel: receives a large (image-sized) JSON body and answers with its size."""

import json

import redhareapiversion  # noqa: F401
from redhareapi import Kernel


class SizeKernel(Kernel):
    def on_kernel_start(self, kernel_context):
        Kernel.log_info("size kernel started")

    def on_task_invoke(self, task_context):
        while task_context is not None:
            data = json.loads(task_context.get_input_data())
            task_context.set_output_data(json.dumps({"status": "finished", "bytes": len(data["local_input_image"])}))
            task_context = task_context.next()


if __name__ == "__main__":
    SizeKernel().run()
