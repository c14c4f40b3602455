"""The cluster side: the Argo Server client and the commands around the Argo sweep.

``submit`` and ``status`` run on a user's machine or in CI and talk to an Argo Server;
``push-status`` runs in the sweep's onExit pod. The stages never import this package.

- ``settings``     where the Argo Server is and how to reach it (options and ARGO_* variables)
- ``sweepfile``    argo/sweep.yaml: its Workflow and WorkflowTemplate, ``-p`` overrides, checks
- ``client``       the Argo Server API calls, each failure a one-line error
- ``watch``        a workflow's steps (attempts, exit handler), change lines, summary, exit codes
- ``submit``, ``status``, ``push_status``  the command modules
"""
