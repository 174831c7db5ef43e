"""OpenMM-ML plugin: ``MLPotential("maskpot", modelPath="model-openmm.pt")``.

Registered through the ``openmmml.potentials`` entry point. OpenMM-ML imports this module at
``import openmmml``, so it imports nothing heavy and cannot raise; torch is loaded when a System is built.
"""

from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory


class MaskpotPotentialImplFactory(MLPotentialImplFactory):
    """Creates :class:`MaskpotPotentialImpl` objects for ``MLPotential("maskpot", modelPath=..., precision=...)``."""

    def createImpl(self, name: str, modelPath: str = None, precision: str = None, **args) -> MLPotentialImpl:
        _refuse_unknown("MLPotential('maskpot')", args, "modelPath and precision")
        if modelPath is None:
            raise ValueError("MLPotential('maskpot') needs modelPath=<file from maskpot export --target openmm>")
        return MaskpotPotentialImpl(name, modelPath, precision)


def _refuse_unknown(call: str, args: dict, takes: str) -> None:
    if args:
        raise TypeError(f"{call} got unknown argument(s) {', '.join(sorted(args))}; it takes {takes} "
                        "(precision: 'single' | 'double', the export's dtype)")


class MaskpotPotentialImpl(MLPotentialImpl):
    """Adds a maskpot ``TorchForce`` for the whole system or the ML atoms of a mixed system.

    ``precision`` ("single" | "double"), given to ``MLPotential`` or to ``createSystem`` /
    ``createMixedSystem``, must match the export's dtype (float32 | float64): the export is refused otherwise.
    """

    def __init__(self, name: str, modelPath: str, precision: str = None):
        self.name = name
        self.modelPath = str(modelPath)
        self.precision = precision

    def addForces(self, topology, system, atoms, forceGroup, precision: str = None, **args):
        from maskpot.openmm.force import create_force

        _refuse_unknown("createSystem/createMixedSystem of MLPotential('maskpot')", args, "precision")
        force = create_force(self.modelPath, topology, atoms=None if atoms is None else list(atoms),
                             precision=precision or self.precision)
        force.setForceGroup(forceGroup)
        system.addForce(force)
