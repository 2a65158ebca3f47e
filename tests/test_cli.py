"""The command line skeleton: help, version, env, exit codes, and `automl check` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from automl import __version__
from automl.cli import build_parser, main, space_commands

from .conftest import REPO, SPACES


def _run(*args: str, cwd: Path = REPO, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "automl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_help_does_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "from automl.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "for command in ('check', 'env'):\n"
        "    try:\n        main([command, '--help'])\n    except SystemExit:\n        pass\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'optuna', 'rich', 'sklearn', 'numpy')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert "HEAVY []" in result.stdout


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "check" in out and "env" in out and "--debug" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"automl {__version__}"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert main(["check", "spaces/cnn.py", "--samples", "abc"]) == 2
    err = capsys.readouterr().err
    assert "--samples needs a whole number, got 'abc'" in err
    assert main([]) == 2


def test_a_seed_outside_what_the_samplers_take_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A search's seed seeds NumPy-based samplers (under 2**32) and its trials' seeds (times
    # 1_000_003); a trial's own seed reaches tf.data (int64).
    limits = {"search": 2**31 - 1, "check": 2**31 - 1, "trial": 2**63 - 1}
    for command, limit in limits.items():
        for seed in ("-1", str(limit + 1), "x"):
            assert main([command, "spaces/cnn.py", "--seed", seed]) == 2
            err = capsys.readouterr().err.strip().splitlines()[-1]
            wanted = "needs a whole number" if seed == "x" else f"between 0 and {limit}"
            assert "--seed" in err and wanted in err, err


def test_a_first_rung_outside_the_budget_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOML_STORAGE", raising=False)
    space = str(SPACES / "cnn.py")
    assert main(["search", space, "--min-epochs", "0"]) == 2
    assert "--min-epochs must be at least 1, got 0" in capsys.readouterr().err
    assert main(["search", space, "--epochs", "9", "--min-epochs", "9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--min-epochs 9 leaves no epoch to prune at with --epochs 9" in err[0]
    assert "--pruner none" in err[0]
    assert not (tmp_path / "runs").exists()  # nothing was created


def test_env_prints_what_a_bug_report_needs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    for label in (
        "Python",
        "TensorFlow",
        "Keras",
        "Optuna",
        "Keras Tuner",
        "GPUs",
        "CPUs",
        "Default storage",
        "sqlite:///",
    ):
        assert label in out


def test_env_hides_storage_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOML_STORAGE", "postgresql://me:s3cret@db.example/automl")
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "postgresql://me:***@db.example/automl" in out
    assert main(["env", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["default_storage"] == "postgresql://me:***@db.example/automl"
    assert facts["packages"]["Optuna"] == version("optuna") and facts["cpus"]["usable"] >= 1
    assert isinstance(facts["gpus"], list)


def test_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(space_commands, "run_env", interrupted)
    assert main(["env"]) == 130


def test_unexpected_error_exits_1_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: object) -> int:
        raise RuntimeError("disk\nfull")

    monkeypatch.setattr(space_commands, "run_env", broken)
    assert main(["env"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "error: unexpected RuntimeError: disk full (run with --debug for the traceback)"
    )
    with pytest.raises(RuntimeError):
        main(["--debug", "env"])


def test_check_lists_parameters_and_builds_the_default_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", str(SPACES / "cnn.py"), "--samples", "4"]) == 0
    out = capsys.readouterr().out
    for name in ("backbone", "depth", "filters", "dropout", "l2", "learning_rate", "batch_size"):
        assert name in out
    assert "{conv, resnet" in out
    assert "[1e-06, 0.01]" in out and "log" in out
    assert "backbone in [conv]" in out and "backbone in [resnet]" in out
    assert "Default model" in out and "parameters" in out
    assert "4 random configurations" in out and "Parameter counts: min" in out


def test_check_end_to_end_in_a_subprocess() -> None:
    result = _run("check", "spaces/cnn.py")
    assert result.returncode == 0, result.stderr
    assert "learning_rate" in result.stdout
    assert result.stderr == ""  # TensorFlow's start-up noise is kept out


def test_check_bad_data_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(SPACES / "cnn.py"), "--data", "no/such/folder"]) == 2
    assert "no/such/folder: no such data source" in capsys.readouterr().err


def test_the_several_hosts_examples_run_commands_automl_accepts() -> None:
    """examples/slurm_array.sh and examples/k8s_job.yaml: a renamed flag must break this."""
    import shlex

    import yaml

    from automl.cli import build_parser

    root = Path(__file__).resolve().parents[1]
    script = (root / "examples" / "slurm_array.sh").read_text()
    line = next(x for x in script.splitlines() if x.startswith("exec automl "))
    manifest = yaml.safe_load((root / "examples" / "k8s_job.yaml").read_text())
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"] for e in container["env"]}
    assert {"AUTOML_STORAGE", "AUTOML_ARTIFACTS", "AUTOML_HOST"} <= env
    for argv in (shlex.split(line)[2:], container["command"][1:]):
        args = build_parser().parse_args(argv)
        assert args.command == "search" and args.study == "cnn" and args.trials == 200
        assert (root / args.space).is_file()


def test_shell_completion_completes_commands_flags_and_choices_in_a_real_bash(
    tmp_path: Path,
) -> None:
    """`automl completion bash` (shtab, from the parser itself), sourced in bash as the README's
    install command does; `completion zsh` is a zsh completion function."""
    script = tmp_path / "automl.bash"
    result = _run("completion", "bash")
    assert result.returncode == 0, result.stderr
    script.write_text(result.stdout)

    def complete(*words: str) -> list[str]:
        listed = " ".join(f"'{w}'" for w in ("automl", *words))
        shell = (
            f"source {script}; COMP_WORDS=({listed}); COMP_CWORD={len(words)}; "
            'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; _shtab_automl; '
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True)
        return done.stdout.split()

    assert complete("se") == ["search", "serve"]
    assert complete("search", "--study") == ["--study", "--study-name"]
    assert complete("search", "--sampler", "kt-b") == ["kt-bayesian"]
    assert complete("export", "cnn", "--quan") == ["--quantize"]
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "mine.py").write_text("")
    assert complete("search", f"{tmp_path}/spaces/m") == [f"{tmp_path}/spaces/mine.py"]
    zsh = _run("completion", "zsh")
    assert zsh.returncode == 0 and zsh.stdout.startswith("#compdef automl")
    assert "--study-name" in zsh.stdout and "_files" in zsh.stdout
    assert _run("completion", "fish").returncode == 2


def test_the_export_and_predict_choices_are_the_formats_and_quantizations_export_knows() -> None:
    """The CLI lists them without importing the deploy package (NumPy and more at start-up),
    so its tuples must stay the same as the formats module's."""
    from automl.cli import deploy_commands
    from automl.deploy.formats import FORMATS, QUANTIZATIONS

    assert deploy_commands.QUANTIZATIONS == QUANTIZATIONS
    parser = build_parser()
    predict = parser._subparsers._group_actions[0].choices["predict"]  # type: ignore[union-attr]
    backend = next(a for a in predict._actions if a.dest == "backend")
    assert tuple(backend.choices) == tuple(FORMATS)  # type: ignore[arg-type]
