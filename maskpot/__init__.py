"""maskpot: masked pretraining of graph-neural-network interatomic potentials, exported to MD engines.

Units inside the package are ASE's: Angstrom, eV, eV/Angstrom. Conversion happens only at engine boundaries.
"""

__version__ = "0.1.0"
