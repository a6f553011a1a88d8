"""The ML Metadata password never travels inside ``runtime.metadata.url``.

The spec's sections are the defaults of every compiled pipeline's parameters
and the argument of every task, so a password in the URL used to land in the
compiled YAML, task command lines, derived spec files and error messages. The
URL is now refused with a password; the password comes from the variable or
file the spec names. (The MariaDB-backed checks, kfp.local task and
retraining-process command lines included, are in test_lineage_mysql.py.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from components.core.errors import LineageError, SpecError
from components.core.lineage import LineageStore, connection_config
from components.core.spec import MetadataSpec, dump_spec, parse_spec
from pipelines.compiler import compile_to_text

PASSWORD = "pw-Zq8-never-shown"


def _spec(metadata: dict) -> dict:
    return {"name": "demo", "task": "detection", "data": {"source": "data/coco.json"}, "runtime": {"metadata": metadata}}


@pytest.mark.parametrize("url", [f"mysql://cvpipe:{PASSWORD}@db:3306/mlmd", f"mysql://:{PASSWORD}@db/mlmd"])
def test_spec_refuses_a_password_in_the_url_without_repeating_it(url):
    with pytest.raises(SpecError) as e:
        parse_spec(_spec({"url": url}), "spec.yaml")
    [(path, message)] = e.value.problems
    assert path == "runtime.metadata.url"
    assert message.startswith("must not contain a password") and "runtime.metadata.password_env" in message
    assert PASSWORD not in str(e.value)


def test_password_source_names_are_kept_and_defaults_stay_out_of_the_dump():
    spec = parse_spec(_spec({"url": "mysql://cvpipe@db:3306/mlmd", "password_env": "MLMD_PW", "password_file": "/run/secrets/mlmd"}))
    assert spec.runtime.metadata.password_env == "MLMD_PW"
    assert spec.model_dump(mode="json")["runtime"]["metadata"] == {
        "url": "mysql://cvpipe@db:3306/mlmd",
        "password_env": "MLMD_PW",
        "password_file": "/run/secrets/mlmd",
    }
    # a spec naming no source dumps exactly as before (golden compiled pipelines unchanged)
    assert MetadataSpec().model_dump(mode="json") == {"url": "sqlite:///mlmd.sqlite"}
    with pytest.raises(SpecError, match="password_env"):
        parse_spec(_spec({"url": "mysql://cvpipe@db/mlmd", "password_env": "NOT A NAME"}))


def test_compiled_pipeline_and_derived_spec_hold_no_password(monkeypatch, tmp_path):
    """Whatever the environment holds, compiling copies only the URL and the names of the sources."""
    monkeypatch.setenv("CVPIPE_MLMD_PASSWORD", PASSWORD)
    monkeypatch.setenv("MLMD_PW", PASSWORD)
    secret_file = tmp_path / "mlmd-password"
    secret_file.write_text(PASSWORD + "\n")
    data = _spec({"url": "mysql://cvpipe@db:3306/mlmd", "password_env": "MLMD_PW", "password_file": str(secret_file)})
    data["monitoring"] = {"window": "24h", "retrain": {"enabled": True}}
    spec = parse_spec(data)
    for pipeline in ("training", "continuous-eval"):
        text = compile_to_text(spec, pipeline=pipeline)
        assert PASSWORD not in text
        assert "mysql://cvpipe@db:3306/mlmd" in text and "MLMD_PW" in text
    # the retraining trigger's derived spec, written to a file the retraining process reads
    from components.alert.model import Alert
    from components.trigger.core import _derived_spec

    alert = Alert.model_validate({"name": "Drift", "severity": "warning", "summary": "s", "dedup_key": "k", "starts_at": datetime.now(UTC)})
    derived = dump_spec(_derived_spec(spec, tmp_path / "merged.json", "t1", [alert]))
    assert PASSWORD not in derived
    assert yaml.safe_load(derived)["runtime"]["metadata"]["password_file"] == str(secret_file)


def test_store_refuses_a_password_url_and_never_shows_it():
    with pytest.raises(LineageError) as e:
        connection_config(f"mysql://ml:{PASSWORD}@10.0.0.5:3307/mlmd")
    assert "mysql://ml@10.0.0.5:3307/mlmd carries a password" in str(e.value)
    assert PASSWORD not in str(e.value)
    with pytest.raises(LineageError) as e:
        LineageStore(f"mysql://ml:{PASSWORD}@10.0.0.5:3307/mlmd")
    assert PASSWORD not in str(e.value)


def test_password_comes_from_the_argument_the_file_or_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("CVPIPE_MLMD_PASSWORD", "from-default-variable\n")
    cfg = connection_config("mysql://ml@10.0.0.5:3307/mlmd")
    assert (cfg.mysql.host, cfg.mysql.port, cfg.mysql.database, cfg.mysql.user) == ("10.0.0.5", 3307, "mlmd", "ml")
    assert cfg.mysql.password == "from-default-variable"  # stripped
    assert connection_config("mysql://ml@h/mlmd", password=PASSWORD).mysql.password == PASSWORD
    monkeypatch.setenv("CVPIPE_MLMD_PASSWORD", "two\nlines")
    with pytest.raises(LineageError, match="environment variable CVPIPE_MLMD_PASSWORD holds control characters"):
        connection_config("mysql://ml@h/mlmd")


def test_unreadable_password_file_is_named(tmp_path):
    metadata = MetadataSpec(url="mysql://ml@127.0.0.1:1/mlmd", password_file=str(tmp_path / "absent"))
    with pytest.raises(LineageError, match=r"ML Metadata password: secret file .*absent cannot be read"):
        LineageStore.for_spec(metadata)


def test_vertex_settings_refuse_a_password_url(tmp_path):
    from pipelines.runners.vertex import load_settings

    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"metadata_url": f"mysql://cvpipe:{PASSWORD}@10.0.0.5/mlmd"}))
    with pytest.raises(SpecError) as e:
        load_settings(settings)
    assert e.value.problems[0][0] == "metadata_url" and "must not contain a password" in e.value.problems[0][1]
    assert PASSWORD not in str(e.value)


def test_spec_and_infra_files_in_the_repository_hold_no_password():
    root = Path(__file__).resolve().parents[2]
    for path in [*root.glob("tests/compile/specs/*.yaml"), *root.glob("infra/**/*.yaml")]:
        for line in path.read_text().splitlines():
            if "mysql://" in line:
                url = line.split("mysql://", 1)[1].split()[0]
                userinfo = url.split("@", 1)[0] if "@" in url else ""
                assert ":" not in userinfo, f"{path}: a metadata URL with a password: {line.strip()}"


def test_relative_password_file_is_resolved_against_the_spec_folder(tmp_path):
    from components.core.spec import load_spec

    (tmp_path / "secrets").mkdir()
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(_spec({"url": "mysql://cvpipe@db/mlmd", "password_file": "secrets/mlmd"})))
    assert load_spec(spec_file).runtime.metadata.password_file == str(tmp_path / "secrets" / "mlmd")
