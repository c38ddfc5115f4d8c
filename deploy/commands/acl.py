"""``roadx acl``: the Kafka ACLs of the parties and the hub principals (``deploy.acl``).

As ``kafka-acls.sh`` command lines or as Strimzi ``KafkaUser`` resources.
"""

from __future__ import annotations

import argparse

from schemas.settings import Settings

from ..acl import exchange_acls, kafka_acl_commands, select_provinces, strimzi_users


def add_parser(sub, with_data_dir) -> None:
    """Register ``acl`` on the roadx parser."""
    acl = with_data_dir(sub.add_parser("acl", help="print the Kafka ACLs of the parties and the hub"))
    acl.add_argument("--format", choices=("kafka", "strimzi"), required=True,
                     help="kafka-acls.sh command lines, or Strimzi KafkaUser resources")
    acl.add_argument("--parties", "--provinces", dest="provinces", metavar="CODES",
                     help="comma-separated party codes, e.g. 11,44,CJ (default: every party taking part; "
                          "--provinces: its first name)")
    acl.add_argument("--cluster", default="roadx", help="Strimzi Kafka cluster name (default roadx)")
    acl.set_defaults(handler=cmd_acl)


def cmd_acl(settings: Settings, args: argparse.Namespace) -> int:
    provinces = select_provinces(settings, args.provinces)
    rules = exchange_acls(settings, provinces)
    if args.format == "kafka":
        print("\n".join(kafka_acl_commands(rules, provinces)))
    else:
        print(strimzi_users(rules, provinces, args.cluster), end="")
    return 0
