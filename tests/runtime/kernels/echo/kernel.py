#!/usr/bin/env python
"""A test EDI kernel: echoes its input and reports custom args; can sleep, hang or crash on request."""

import json
import os
import time

import redhareapiversion  # noqa: F401
from redhareapi import Kernel


class EchoKernel(Kernel):
    def on_kernel_start(self, kernel_context):
        self.description = json.loads(kernel_context.get_model_description())
        delay = float(os.environ.get("ECHO_START_DELAY", "0"))
        time.sleep(delay)
        if os.environ.get("ECHO_FAIL_START"):
            raise RuntimeError("model file missing")
        Kernel.log_info("echo kernel started")

    def on_task_invoke(self, task_context):
        while task_context is not None:
            data = json.loads(task_context.get_input_data())
            if data.get("sleep"):
                time.sleep(float(data["sleep"]))
            if data.get("hang"):
                time.sleep(3600)
            if data.get("say"):
                said = data["say"].format(**{n: globals().get(n) for n in data.get("show_args", [])})
                print(said, end=data.get("end", "\n"), flush=True)
            if data.get("crash"):
                os._exit(3)
            if data.get("raise"):
                raise ValueError("asked to raise")
            answer = {
                "echo": data,
                "pod": os.environ["MSD_POD_NAME"],
                "model_name": os.environ["REDHARE_MODEL_NAME"],
                "model_path": os.environ["REDHARE_MODEL_PATH"],
                "pid": os.getpid(),
            }
            if data.get("show_args"):
                answer["globals"] = {n: globals().get(n) for n in data["show_args"]}
                answer["env"] = {n: os.environ.get(n) for n in data["show_args"]}
            if data.get("affinity"):
                answer["affinity"] = sorted(os.sched_getaffinity(0))
                import resource

                answer["rlimit_as"] = resource.getrlimit(resource.RLIMIT_AS)[0]
            task_context.set_output_data(json.dumps(answer))
            task_context = task_context.next()

    def on_kernel_shutdown(self):
        Kernel.log_info("echo kernel shutting down")


if __name__ == "__main__":
    EchoKernel().run()
