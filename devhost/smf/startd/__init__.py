"""The emulated svc.startd: the restarter daemon, contracts and methods.

    daemon      the process: spawn(), shutdown(), running_pid(), the main loop
    restarter   the restarter and graph engine (restarter.c, graph.c): events,
                administrative actions, enable/disable, method threads
    runner      one method run (method.c method_run): timeouts, :true, :kill
    methods     % token expansion and the method context (env, directory, ids)
    config      what startd reads from properties: methods, startd/*, dependencies
    graph       dependency evaluation (require_all/any, optional_all, exclude_all)
    instance    an instance's in-memory state, its restarter group and log lines
    holder      the per-contract process that keeps a method's descendants together
    seed        the standard services a fresh devhost starts with

Contracts themselves are devhost.smf.contracts.
"""
