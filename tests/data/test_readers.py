import shutil

import numpy as np
import pytest

from maskpot.data import Frame, read, read_many, write_extxyz


def test_deepmd_folder_of_systems(shared_data_dir):
    frames = read(shared_data_dir / "water" / "deepmd_water")
    assert len(frames) == 400
    assert all(len(f) == 192 for f in frames)
    assert list(frames[0].numbers[:64]) == [8] * 64 and list(frames[0].numbers[64:]) == [1] * 128
    assert all(f.periodic and f.cell is not None and f.forces is not None for f in frames)
    assert np.allclose(frames[0].cell, np.eye(3) * 12.444661, atol=1e-5)
    per_molecule = np.mean([f.energy for f in frames]) / 64
    assert per_molecule == pytest.approx(-467.87, abs=0.01)
    # sorted systems, index within each system (data_1 has two sets: 160 frames)
    assert frames[0].source.endswith("data_0#0")
    assert frames[80].source.endswith("data_1#0") and frames[239].source.endswith("data_1#159")
    assert frames[-1].source.endswith("data_3#79")


def test_deepmd_single_system_matches_raw_npy(shared_data_dir):
    system = shared_data_dir / "water" / "deepmd_water" / "data_1"
    frames = read(system)
    assert len(frames) == 160
    raw = np.load(system / "set.001" / "force.npy")
    assert np.array_equal(frames[80].forces, raw[0].reshape(-1, 3))
    assert frames[80].energy == pytest.approx(float(np.load(system / "set.001" / "energy.npy")[0]))


def test_runner_sizes_and_unit_conversion(shared_data_dir):
    path = shared_data_dir / "water" / "n2p2_H2O_RPBE-D3" / "input.data"
    frames = read(path)
    sizes = [len(f) for f in frames]
    assert len(frames) == 20
    assert sorted(set((n, sizes.count(n)) for n in sizes)) == [(48, 11), (96, 2), (192, 7)]
    first = frames[0]
    # first atom of the file: "atom 3.735290838 2.327841157 3.501304856 O ... -0.006530137 -0.002852459 -0.027992554"
    bohr, hartree = 0.529177, 27.2114
    assert first.numbers[0] == 8
    assert np.allclose(first.positions[0], np.array([3.735290838, 2.327841157, 3.501304856]) * bohr, rtol=2e-6)
    assert np.allclose(first.forces[0], np.array([-0.006530137, -0.002852459, -0.027992554]) * hartree / bohr,
                       rtol=1e-5)
    assert np.allclose(first.cell, np.eye(3) * 24.623508 * bohr, rtol=2e-6)
    # the first structure's "energy -4900.37328433" Hartree
    assert first.energy == pytest.approx(-4900.37328433 * hartree, rel=1e-6)
    assert first.source == f"{path}#0"


def test_extxyz_round_trip(tmp_path, tip3p_water_frames):
    path = tmp_path / "sub" / "water.extxyz"
    frames = tip3p_water_frames + [Frame(positions=[[0, 0, 0], [0, 0, 0.74]], numbers=[1, 1], energy=-1.5,
                                         forces=[[0, 0, 1.0], [0, 0, -1.0]])]
    write_extxyz(frames, path)
    assert [p.name for p in path.parent.iterdir()] == ["water.extxyz"]  # no temp file left behind
    back = read(path)
    assert len(back) == len(frames)
    for a, b in zip(frames, back):
        assert np.array_equal(a.numbers, b.numbers)
        assert np.allclose(a.positions, b.positions, atol=1e-7)
        assert np.allclose(a.forces, b.forces, atol=1e-7)
        assert a.energy == pytest.approx(b.energy, abs=1e-7)
        assert np.array_equal(a.pbc, b.pbc)
        assert (a.cell is None) == (b.cell is None)
    assert back[-1].cell is None and not back[-1].periodic
    assert back[1].source == f"{path}#1"
    assert len(read_many([path, path])) == 2 * len(frames)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.extxyz"):
        read("/nonexistent/nope.extxyz")


def test_unknown_format(tmp_path):
    path = tmp_path / "notes.weird"
    path.write_text("this is not a structure\n")
    with pytest.raises(ValueError, match="notes.weird: unknown format") as info:
        read(path)
    assert "\n" not in str(info.value)


def test_truncated_extxyz(tmp_path, tip3p_water_frames):
    path = tmp_path / "w.extxyz"
    write_extxyz(tip3p_water_frames, path)
    cut = tmp_path / "cut.extxyz"
    cut.write_text("".join(path.read_text().splitlines(keepends=True)[:150]))  # second frame cut short
    with pytest.raises(ValueError, match=r"cut.extxyz: cannot read as extxyz .*has \d+ atoms, expected 96") as info:
        read(cut)
    assert "\n" not in str(info.value)


def test_folder_that_is_no_data(tmp_path):
    with pytest.raises(ValueError, match="neither a DeePMD system"):
        read(tmp_path)


def test_truncated_runner_file(tmp_path, shared_data_dir):
    lines = (shared_data_dir / "water" / "n2p2_H2O_RPBE-D3" / "input.data").read_text().splitlines()
    path = tmp_path / "input.data"
    path.write_text("\n".join(lines[:250]) + "\n")  # first structure complete, second cut off
    with pytest.raises(ValueError, match=r"input.data#1: structure has no 'end'") as info:
        read(path)
    assert "\n" not in str(info.value)


def test_runner_block_without_end_followed_by_begin(tmp_path):
    block = ["begin", "lattice 10 0 0", "lattice 0 10 0", "lattice 0 0 10",
             "atom 1 1 1 H 0 0 0.1 0 0", "atom 2 1 1 H 0 0 -0.1 0 0", "energy -1.0", "charge 0"]
    path = tmp_path / "h2.data"
    path.write_text("\n".join(block + ["end"] + block + block + ["end"]) + "\n")
    with pytest.raises(ValueError, match=r"h2.data#1 \(line 18\): 'begin' before"):
        read(path)
    path.write_text("\n".join(block + ["end"]) + "\n")  # detected by content, not name
    (frame,) = read(path)
    assert frame.energy == pytest.approx(-27.2114, rel=1e-5)
    assert frame.forces[0, 0] == pytest.approx(0.1 * 27.2114 / 0.529177, rel=1e-5)


def test_runner_bad_atom_line(tmp_path):
    path = tmp_path / "input.data"
    path.write_text("begin\natom 1 1 1 Xx 0 0 0 0 0\nend\n")
    with pytest.raises(ValueError, match=r"input.data#0 \(line 2\): unknown element 'Xx'"):
        read(path)


def _copy_system(shared_data_dir, tmp_path):
    dst = tmp_path / "sys"
    shutil.copytree(shared_data_dir / "water" / "deepmd_water" / "data_0", dst)
    return dst


def test_deepmd_shapes_disagree(tmp_path, shared_data_dir):
    system = _copy_system(shared_data_dir, tmp_path)
    force = np.load(system / "set.000" / "force.npy")
    np.save(system / "set.000" / "force.npy", force[:-1])
    with pytest.raises(ValueError, match=r"force.npy: array shape \(79, 576\) does not match expected \(80, 576\)"):
        read(system)


def test_deepmd_truncated_npy(tmp_path, shared_data_dir):
    system = _copy_system(shared_data_dir, tmp_path)
    coord = system / "set.000" / "coord.npy"
    coord.write_bytes(coord.read_bytes()[:1000])
    with pytest.raises(ValueError, match="coord.npy: cannot load npy array"):
        read(system)


def test_periodic_frame_without_cell(tmp_path, shared_data_dir):
    with pytest.raises(ValueError, match="periodic frame has no cell"):
        Frame(positions=np.zeros((1, 3)), numbers=[1], pbc=True, source="x#0")
    path = tmp_path / "nocell.extxyz"
    path.write_text('2\npbc="T T T"\nH 0 0 0\nH 0 0 1\n')
    with pytest.raises(ValueError, match=r"nocell.extxyz#0: periodic frame has no cell"):
        read(path)
    system = _copy_system(shared_data_dir, tmp_path)
    box = np.load(system / "set.000" / "box.npy")
    box[3] = 0.0
    np.save(system / "set.000" / "box.npy", box)
    with pytest.raises(ValueError, match=r"sys#3: periodic frame has no cell"):
        read(system)
