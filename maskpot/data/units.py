"""Unit conversions, all derived from ASE's CODATA constants (ase.units) so there is one source of truth.

Internal units: Angstrom, eV, eV/Angstrom.
"""

from ase import units as _u

BOHR_TO_ANGSTROM: float = _u.Bohr
HARTREE_TO_EV: float = _u.Hartree
HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM: float = _u.Hartree / _u.Bohr
NM_TO_ANGSTROM: float = 10.0
EV_TO_KJ_PER_MOL: float = 1.0 / (_u.kJ / _u.mol)
EV_TO_KCAL_PER_MOL: float = 1.0 / (_u.kcal / _u.mol)
