"""The data registry's network path (against a server on 127.0.0.1) and its failure modes."""

import errno
import io
import os
import shutil
import zipfile
import pytest
from conftest import zenodo_record
from astronb import data
from astronb.data import DataError, fetch


def _zip(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
    return buf.getvalue()


@pytest.fixture
def zenodo(http_server, monkeypatch):
    "A local Zenodo serving a DeepSpaceYolo-like archive for record 8387071."
    monkeypatch.setenv("ASTRONB_ZENODO_API", http_server.url + "/api")
    payload = _zip(
        {
            "DeepSpaceYoloDataset/images/a.jpg": os.urandom(300_000),
            "DeepSpaceYoloDataset/labels/a.txt": "0 0.5 0.5 0.1 0.1\n",
        }
    )
    zenodo_record(http_server, 8387071, {"DeepSpaceYoloDataset.zip": payload})
    return http_server, payload


def test_zenodo_download_extract_and_cache(zenodo):
    srv, payload = zenodo
    got = fetch("deepspaceyolo", progress=False)
    z = got.files["DeepSpaceYoloDataset.zip"]
    assert z.read_bytes() == payload and got.source == "network"
    ext = got.extracted["DeepSpaceYoloDataset.zip"]
    assert (ext / "DeepSpaceYoloDataset" / "labels" / "a.txt").read_text().startswith("0 0.5")
    assert (data.dataset_dir("deepspaceyolo") / "zenodo-8387071.json").exists()  # API answer cached
    n = len(srv.requests)
    fetch("deepspaceyolo", progress=False)  # second call: no network at all
    assert len(srv.requests) == n


def test_dropped_connection_is_resumed_with_range(zenodo):
    srv, payload = zenodo
    path = "/api/records/8387071/files/DeepSpaceYoloDataset.zip/content"
    srv.drop_after[path] = 100_000
    got = fetch("deepspaceyolo", progress=False)
    assert got.files["DeepSpaceYoloDataset.zip"].read_bytes() == payload
    file_requests = [r for r in srv.requests if r[0] == path]
    assert file_requests[0][1] is None and file_requests[1][1] == "bytes=100000-"


def test_partial_file_from_a_killed_run_is_resumed(zenodo):
    srv, payload = zenodo
    d = data.dataset_dir("deepspaceyolo")
    d.mkdir(parents=True)
    (d / "DeepSpaceYoloDataset.zip.part").write_bytes(payload[:12345])  # what a killed run left
    fetch("deepspaceyolo", progress=False)
    assert ("/api/records/8387071/files/DeepSpaceYoloDataset.zip/content", "bytes=12345-") in srv.requests
    assert not (d / "DeepSpaceYoloDataset.zip.part").exists()


def test_server_ignoring_range_restarts_cleanly(zenodo):
    srv, payload = zenodo
    srv.ranges = False
    d = data.dataset_dir("deepspaceyolo")
    d.mkdir(parents=True)
    (d / "DeepSpaceYoloDataset.zip.part").write_bytes(b"garbage-from-elsewhere")
    got = fetch("deepspaceyolo", progress=False)
    assert got.files["DeepSpaceYoloDataset.zip"].read_bytes() == payload


def test_checksum_mismatch_leaves_no_file(zenodo):
    srv, payload = zenodo
    srv.files["/api/records/8387071/files/DeepSpaceYoloDataset.zip/content"] = payload[:-1] + b"X"
    with pytest.raises(DataError) as e:
        fetch("deepspaceyolo", progress=False)
    msg = str(e.value)
    assert "deepspaceyolo" in msg and "DeepSpaceYoloDataset.zip" in msg and "checksum mismatch" in msg
    d = data.dataset_dir("deepspaceyolo")
    assert not (d / "DeepSpaceYoloDataset.zip").exists() and not (d / "DeepSpaceYoloDataset.zip.part").exists()


def test_http_error_names_dataset_file_and_fix(zenodo):
    srv, _ = zenodo
    srv.status["/api/records/8387071/files/DeepSpaceYoloDataset.zip/content"] = 404
    with pytest.raises(DataError) as e:
        fetch("deepspaceyolo", progress=False)
    assert "HTTP 404" in str(e.value) and "DeepSpaceYoloDataset.zip" in str(e.value) and "->" in str(e.value)


def test_zenodo_api_error(http_server, monkeypatch):
    monkeypatch.setenv("ASTRONB_ZENODO_API", http_server.url + "/api")
    http_server.status["/api/records/8387071"] = 503
    with pytest.raises(DataError) as e:
        fetch("deepspaceyolo", progress=False)
    assert "Zenodo API answered HTTP 503" in str(e.value)


def test_corrupt_archive_with_right_checksum_is_reported(http_server, monkeypatch):
    monkeypatch.setenv("ASTRONB_ZENODO_API", http_server.url + "/api")
    bad = _zip({"a.txt": "x" * 1000})[:-30]  # truncated zip, published as such
    zenodo_record(http_server, 8387071, {"DeepSpaceYoloDataset.zip": bad})
    with pytest.raises(DataError) as e:
        fetch("deepspaceyolo", progress=False)
    assert "corrupt or truncated" in str(e.value)
    assert not any(p.name.endswith(".partial") for p in data.dataset_dir("deepspaceyolo").rglob("*"))


def test_full_disk_keeps_partial_file_and_says_so(zenodo, monkeypatch):
    srv, payload = zenodo
    real_open = open

    def full_disk_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        if str(path).endswith(".part") and "b" in mode:

            def write(b):
                raise OSError(errno.ENOSPC, "No space left on device")

            f.write = write
        return f

    monkeypatch.setattr("builtins.open", full_disk_open)
    with pytest.raises(DataError) as e:
        fetch("deepspaceyolo", progress=False)
    assert "disk is full" in str(e.value) and "ASTRONB_CACHE" in str(e.value)
    assert not (data.dataset_dir("deepspaceyolo") / "DeepSpaceYoloDataset.zip").exists()


def test_github_dataset_over_http(http_server, monkeypatch, shared_mirror):
    "The GitHub raw URL path: serve the real wfsat files under the registry's URLs."
    ds = data.REGISTRY["wfsat"]
    prefix = "https://raw.githubusercontent.com"
    for rf in ds.files:
        http_server.files[rf.url[len(prefix) :]] = (shared_mirror / "wfsat" / rf.name).read_bytes()
    patched = [
        data.RemoteFile(rf.name, http_server.url + rf.url[len(prefix) :], rf.checksum, rf.size) for rf in ds.files
    ]
    monkeypatch.setattr(ds, "files", patched)
    got = fetch("wfsat", progress=False)
    assert got.source == "network" and len(got.files) == 6
    assert all(p.read_bytes() == (shared_mirror / "wfsat" / n).read_bytes() for n, p in got.files.items())


# --- the mirror --------------------------------------------------------------------------------


def test_mirror_verifies_all_real_datasets(shared_mirror):
    for name in ("wfsat", "sep-testdata", "ztf-alerts"):
        got = fetch(name, mirror=shared_mirror, progress=False)
        assert got.source == "mirror" and len(got.files) == len(data.REGISTRY[name].files)


def _copy_mirror(src, dst, dataset="wfsat"):
    folder = data.MIRROR_FOLDERS.get(dataset, dataset)
    shutil.copytree(src / folder, dst / folder)
    return dst / folder


def test_corrupt_mirror_file_is_named(shared_mirror, tmp_path):
    m = tmp_path / "mirror"
    d = _copy_mirror(shared_mirror, m)
    p = d / "242.fits"
    b = bytearray(p.read_bytes())
    b[5000] ^= 0xFF
    p.write_bytes(bytes(b))
    with pytest.raises(DataError) as e:
        fetch("wfsat", mirror=m, progress=False)
    msg = str(e.value)
    assert "'wfsat'" in msg and "'242.fits'" in msg and "does not match" in msg and "restore it from https://" in msg


def test_mirror_missing_file_is_named(shared_mirror, tmp_path):
    m = tmp_path / "mirror"
    d = _copy_mirror(shared_mirror, m)
    (d / "244.list").unlink()
    with pytest.raises(DataError) as e:
        fetch("wfsat", mirror=m, progress=False)
    assert "'244.list'" in str(e.value) and "has no" in str(e.value)


def test_mirror_from_environment(shared_mirror, monkeypatch):
    monkeypatch.setenv("ASTRONB_DATA_MIRROR", str(shared_mirror))
    assert fetch("sep-testdata", progress=False).source == "mirror"


def test_tar_with_link_is_refused(tmp_path):
    import tarfile

    t = tmp_path / "evil.tar"
    with tarfile.open(t, "w") as tf:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DataError) as e:
        data.safe_extract(t, tmp_path / "out", "demo")
    assert "link" in str(e.value) and not (tmp_path / "out").exists()
