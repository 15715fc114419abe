import io
import logging

from interlock.adapters.sinks import LogSink, StreamSink
from interlock.core.commands import Alert


def test_log_sink_levels_by_severity(caplog):
    with caplog.at_level(logging.WARNING, logger="interlock.alerts"):
        LogSink()(Alert("high_rollback", 6, "rollbacks at 40%", "review"))
        LogSink().emit(Alert("rollback_failed", 8, "restore failed", "alert", "p/s"))
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.ERROR]
    assert "[p/s]" in caplog.records[1].getMessage()


def test_stream_sink_one_line_per_alert():
    buf = io.StringIO()
    StreamSink(buf)(Alert("unsafe_escalation", 7, "drift 0.6 > 0.4", "lock"))
    assert buf.getvalue() == "ALERT unsafe_escalation severity 7 -> lock: drift 0.6 > 0.4\n"
