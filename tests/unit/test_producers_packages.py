"""producers and its three adapter sub-packages name their public names in ``__all__``; each resolves,
and importing one module of a sub-package loads neither the others nor Kafka."""

from __future__ import annotations

import subprocess
import sys


def test_checking_a_file_row_loads_no_kafka_client():
    code = "import sys, producers.files.rows, producers.errors; print('confluent_kafka' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
