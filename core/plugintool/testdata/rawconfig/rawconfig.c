/* rawconfig: at connect, copies what get_config returns for the whole
 * table (key "") and for the key "deny" into the notes "config" and
 * "deny", byte for byte: TestConfigJSONDialect checks the JSON dialect
 * pluginapi/ABI.md describes. */
#include "sluice.h"

static char buf[8192];

SLUICE_EXPORT("sluice_abi_version") int32_t sluice_abi_version(void) { return SLUICE_ABI_VERSION; }

SLUICE_EXPORT("sluice_hooks") int32_t sluice_hooks(void) { return SLUICE_HOOK_BIT(SLUICE_HOOK_CONNECT); }

static void copy(const char *key, int32_t key_len, const char *note, int32_t note_len) {
	int32_t n = sluice_get_config(key, key_len, buf, sizeof buf);
	if (n >= 0 && n <= (int32_t)sizeof buf)
		sluice_set_note(note, note_len, buf, n);
}

SLUICE_EXPORT("sluice_on_hook") int32_t sluice_on_hook(int32_t hook) {
	copy(SLUICE_STR(""), SLUICE_STR("config"));
	copy(SLUICE_STR("deny"), SLUICE_STR("deny"));
	copy(SLUICE_STR("limits.burst"), SLUICE_STR("burst"));
	return SLUICE_CONTINUE;
}
