"""The ``roadx`` subcommands, one module each; ``deploy.cli`` builds the parser from them.

Each module has ``add_parser(sub, with_data_dir)``, which registers its subcommands and sets
``handler(settings, args) -> exit status`` as their default, and the ``cmd_*`` handlers:

    demo.py       roadx demo
    stack.py      roadx up | down (and supervise, what up starts)
    store.py      roadx query | report | verify
    worker.py     roadx worker streams | sink | synthetic (through the worker shell, deploy.worker)
    produce.py    roadx produce files | db
    topics.py     roadx topics spec | plan | apply
    acl.py        roadx acl
    subscribe.py  roadx subscribe
    cases.py      roadx cases list | show | receipt | progress | answer | decline (the cross-province cases)
    keys.py       roadx keys issue | revoke | list (the parties' information-service credentials)
    status.py     roadx status
    bench.py      roadx bench (the run: deploy.bench)
    chaos.py      roadx chaos (the run: deploy.chaos; also python -m deploy.commands.chaos)

The modules are loaded on first use (``deploy.commands.chaos`` is also run with ``python -m``).
"""

from schemas.exports import lazy_modules


__all__ = ["acl", "bench", "cases", "chaos", "demo", "keys", "produce", "stack", "status", "store", "subscribe",
           "topics", "worker"]
__getattr__ = lazy_modules(__name__, __all__)
