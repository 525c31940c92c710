/* abiprobe: checks what pluginapi/ABI.md tells authors in other languages
 * (TestABIDocConfigJSON, TestABIDocTexts). At connect it copies what
 * get_config returns for the whole table (key ""), for "deny" and for
 * "limits.burst" into the notes "config", "deny" and "burst", byte for
 * byte. At data it calls the functions whose texts must be printable
 * ASCII with UTF-8 text, and add_header with a UTF-8 value, and notes
 * each status in decimal. */
#include "sluice.h"

static char buf[8192];

SLUICE_EXPORT("sluice_abi_version") int32_t sluice_abi_version(void) { return SLUICE_ABI_VERSION; }

SLUICE_EXPORT("sluice_hooks") int32_t sluice_hooks(void) {
	return SLUICE_HOOK_BIT(SLUICE_HOOK_CONNECT) | SLUICE_HOOK_BIT(SLUICE_HOOK_DATA);
}

static void copy(const char *key, int32_t key_len, const char *note, int32_t note_len) {
	int32_t n = sluice_get_config(key, key_len, buf, sizeof buf);
	if (n >= 0 && n <= (int32_t)sizeof buf)
		sluice_set_note(note, note_len, buf, n);
}

/* status notes st as "-3", "0", …. */
static void status(const char *note, int32_t note_len, int32_t st) {
	char s[4];
	int32_t n = 0;
	if (st < 0) {
		s[n++] = '-';
		st = -st;
	}
	s[n++] = (char)('0' + st % 10);
	sluice_set_note(note, note_len, s, n);
}

SLUICE_EXPORT("sluice_on_hook") int32_t sluice_on_hook(int32_t hook) {
	if (hook == SLUICE_HOOK_CONNECT) {
		copy(SLUICE_STR(""), SLUICE_STR("config"));
		copy(SLUICE_STR("deny"), SLUICE_STR("deny"));
		copy(SLUICE_STR("limits.burst"), SLUICE_STR("burst"));
		return SLUICE_CONTINUE;
	}
	status(SLUICE_STR("set_reply utf8 text"),
		sluice_set_reply(550, SLUICE_STR("5.7.1"), SLUICE_STR("<jos\xc3\xa9@example.com> refused")));
	status(SLUICE_STR("set_reply ascii text"), sluice_set_reply(550, SLUICE_STR("5.7.1"), SLUICE_STR("refused")));
	status(SLUICE_STR("add_header utf8 name"), sluice_add_header(SLUICE_STR("X-Caf\xc3\xa9"), SLUICE_STR("v")));
	status(SLUICE_STR("add_header utf8 value"), sluice_add_header(SLUICE_STR("X-Cafe"), SLUICE_STR("caf\xc3\xa9")));
	status(SLUICE_STR("add_score utf8 symbol"), sluice_add_score(SLUICE_STR("CAF\xc3\x89"), 1.0));
	status(SLUICE_STR("add_rcpt utf8 address"), sluice_add_rcpt(SLUICE_STR("jos\xc3\xa9@example.com")));
	return SLUICE_CONTINUE;
}
