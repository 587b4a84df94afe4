"""`make run` as a person sees it: honcho starts the Procfile's processes and first_steps
as the Makefile does; the demo login and first steps come once, in a box, after the web
app's and the worker's banners; Ctrl-C stops every process within honcho's 5 s grace,
the Celery worker included (it used to be SIGKILLed); gunicorn's control socket is in
BULKOPS_VAR_DIR, not in a place every gunicorn of the user shares."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.processes import BIN, ROOT, free_port, manage, process_env

pytestmark = pytest.mark.slow


def run_procfile(tmp_path: Path, port: int) -> Path:
    """The Procfile plus the Makefile's first_steps line, as `make run` writes them."""
    makefile = (ROOT / "Makefile").read_text()
    line = re.search(r'echo "(first_steps: [^"]+)"', makefile).group(1)
    procfile = tmp_path / "Procfile.run"
    procfile.write_text((ROOT / "Procfile").read_text() + line.replace("$(PORT)", str(port)))
    return procfile


def wait_for(output: Path, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while text not in (seen := output.read_text()):
        assert time.monotonic() < deadline, f"no {text!r} in:\n{seen[-3000:]}"
        time.sleep(0.2)
    return seen


def test_make_run_prints_first_steps_after_the_banners_and_stops_on_ctrl_c(tmp_path):
    var_dir, port = tmp_path / "var", free_port()
    env = process_env(var_dir)
    env["PATH"] = f"{BIN}:{env['PATH']}"
    assert manage(env, "migrate", "--no-input").returncode == 0
    seeded = manage(env, "seed_demo", "--url", f"http://127.0.0.1:{port}", "--later")
    assert "Password" not in seeded.stdout  # kept for later, not lost above the banners
    assert (var_dir / "first-steps.txt").stat().st_mode & 0o777 == 0o600

    output = tmp_path / "honcho.log"
    with output.open("wb") as out:
        honcho = subprocess.Popen(
            [str(BIN / "honcho"), "start", "--procfile", str(run_procfile(tmp_path, port)),
             "--app-root", str(ROOT), "--port", str(port), "--no-colour"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        seen = wait_for(output, "+------")
        seen = wait_for(output, "bulk_export --base-url")
        box = seen.index("bulkops is ready")
        assert seen.index("Listening at: ") < box and seen.index(" ready.\n") < box
        assert len(re.findall(r"Password:\s+\S+", seen)) == 1
        assert not (var_dir / "first-steps.txt").exists()  # the password is printed once
        assert (var_dir / "run" / "gunicorn.ctl").is_socket()

        honcho.send_signal(signal.SIGINT)  # Ctrl-C
        honcho.wait(timeout=20)
    finally:
        if honcho.poll() is None:
            honcho.kill()
    stops = output.read_text().split("SIGINT received")[1]
    assert "worker.1 stopped (rc=0)" in stops
    assert "SIGKILL" not in stops
