"""The ``labelwise`` command line (typer): the commands live in one module per group and are
registered here, in the order ``labelwise --help`` lists them."""

from flows.cli import bench, data, elicit, export, init, run, secrets, select, services, weak
from flows.cli.common import app

app.command("init")(init.init_command)
app.command("run")(run.run)
app.command("strategies")(run.list_strategies)
app.command("history")(run.history)
app.command("ingest")(data.ingest_command)
app.command("checkout")(data.checkout_command)
app.command("benchmark")(bench.benchmark_command)
app.command("lf-report")(weak.lf_report_command)
app.command("select")(select.select_command)
app.command("elicit")(elicit.elicit_command)
app.command("export")(export.export_command)
app.command("register-model")(export.register_model_command)
app.command("serve")(services.serve_command)
app.command("ui")(services.ui_command)
app.add_typer(services.annotation_app, name="annotation")
app.add_typer(secrets.secret_app, name="secret")

__all__ = ["app"]
