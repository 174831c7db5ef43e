"""OpenMM-ML plugin: ``MLPotential("maskpot", modelPath="model-openmm.pt")``.

Registered through the ``openmmml.potentials`` entry point. OpenMM-ML imports this module at
``import openmmml``, so it imports nothing heavy and cannot raise; torch is loaded when a System is built.
"""

from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory


class MaskpotPotentialImplFactory(MLPotentialImplFactory):
    """Creates :class:`MaskpotPotentialImpl` objects for ``MLPotential("maskpot", modelPath=...)``."""

    def createImpl(self, name: str, modelPath: str = None, **args) -> MLPotentialImpl:
        if modelPath is None:
            raise ValueError("MLPotential('maskpot') needs modelPath=<file from maskpot export --target openmm>")
        return MaskpotPotentialImpl(name, modelPath)


class MaskpotPotentialImpl(MLPotentialImpl):
    """Adds a maskpot ``TorchForce`` for the whole system or the ML atoms of a mixed system."""

    def __init__(self, name: str, modelPath: str):
        self.name = name
        self.modelPath = str(modelPath)

    def addForces(self, topology, system, atoms, forceGroup, **args):
        from maskpot.openmm.force import create_force

        force = create_force(self.modelPath, topology, atoms=None if atoms is None else list(atoms))
        force.setForceGroup(forceGroup)
        system.addForce(force)
