"""The Azure ML deploy target: ``deploy export --target azureml`` writes managed online endpoint files (seed 004).

It writes files only (see README.md beside this file); nothing here imports azure-ai-ml except the optional
check of the written YAML with Azure's own loaders (:func:`checks.sdk_problems`).
"""
