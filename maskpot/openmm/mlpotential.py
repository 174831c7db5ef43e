"""OpenMM-ML plugin: ``MLPotential("maskpot", modelPath="model-openmm.pt")``.

Registered through the ``openmmml.potentials`` entry point. OpenMM-ML imports this module at
``import openmmml``, so it imports nothing heavy and cannot raise; torch is loaded when a System is built.
"""

from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory

OPTIONS = ("precision", "backend", "device")  # each given to MLPotential or to createSystem/createMixedSystem
TAKES = ("precision: 'single' | 'double', the export's dtype; backend: 'auto' | 'torch' | 'python'; "
         "device: 'auto' | 'cpu' | 'cuda'")


class MaskpotPotentialImplFactory(MLPotentialImplFactory):
    """Creates :class:`MaskpotPotentialImpl` objects for ``MLPotential("maskpot", modelPath=..., precision=...,
    backend=..., device=...)``."""

    def createImpl(self, name: str, modelPath: str = None, **args) -> MLPotentialImpl:
        _refuse_unknown("MLPotential('maskpot')", args, "modelPath, " + ", ".join(OPTIONS))
        if modelPath is None:
            raise ValueError("MLPotential('maskpot') needs modelPath=<file from maskpot export --target openmm>")
        return MaskpotPotentialImpl(name, modelPath, **args)


def _refuse_unknown(call: str, args: dict, takes: str) -> None:
    unknown = set(args) - set(OPTIONS)
    if unknown:
        raise TypeError(f"{call} got unknown argument(s) {', '.join(sorted(unknown))}; it takes {takes} ({TAKES})")


class MaskpotPotentialImpl(MLPotentialImpl):
    """Adds a maskpot force (``maskpot.openmm.create_force``) for the whole system or the ML atoms of a mixed
    system.

    ``precision`` ("single" | "double") must match the export's dtype (float32 | float64): the export is refused
    otherwise. ``backend`` ("auto": openmm-torch's TorchForce where it works, else OpenMM's PythonForce) and
    ``device`` ("auto": cuda when torch sees one) are ``create_force``'s. Each option can be given to
    ``MLPotential`` or to ``createSystem`` / ``createMixedSystem`` (which wins).
    """

    def __init__(self, name: str, modelPath: str, **options):
        self.name = name
        self.modelPath = str(modelPath)
        self.options = options

    def addForces(self, topology, system, atoms, forceGroup, **args):
        from maskpot.openmm.force import create_force

        _refuse_unknown("createSystem/createMixedSystem of MLPotential('maskpot')", args, ", ".join(OPTIONS))
        options = {**self.options, **{k: v for k, v in args.items() if v is not None}}
        force = create_force(self.modelPath, topology, atoms=None if atoms is None else list(atoms), **options)
        force.setForceGroup(forceGroup)
        system.addForce(force)
