"""pair_style maskpot with an export made with fused kernels (maskpot/kernels; the plugin links their library)
against the ASE calculator of a reference export of the same checkpoint."""

from __future__ import annotations

import pytest

from lammps_checks import RTOL, assert_close, ase_reference, run0_lmp, tensor

from maskpot.lammps import write_data


@pytest.mark.parametrize("backbone,dtype", [("painn", "float64"), ("painn", "float32"), ("egnn", "float64"),
                                           ("gns", "float64")])
def test_fused_lammps_export_matches_reference_ase(export_factory, water_atoms, plugin, tmp_path, backbone, dtype):
    """pair_style maskpot (which links the kernels library) with a fused export, one rank (ghosts folded) and two
    (node states exchanged, layer-wise backward through the operators), against the reference ASE export."""
    model = export_factory("lammps", backbone, dtype, kernels="fused")
    ref = ase_reference(water_atoms, export_factory("ase", backbone, dtype, kernels="reference"))
    data = write_data(water_atoms, tmp_path / "water.data", "O,H")
    for nprocs in (1, 2):
        thermo, forces, log = run0_lmp(data, model, plugin, tmp_path / f"np{nprocs}", nprocs)
        assert ("folded" if nprocs == 1 else "exchanged") in log
        assert_close(thermo["poteng"], forces, tensor(thermo), ref, "metal", RTOL[dtype])
