/*
 * c-deny-rcpt: a Sluice plugin in C (no libc) that refuses, with
 * "550 5.7.1 <addr>: recipient refused by policy", every recipient listed
 * in its configuration key "deny" (ASCII letters compared without regard
 * to case). It requires the ABI feature "init", so a bad list refuses the
 * load instead of letting mail through unchecked.
 *
 *   clang --target=wasm32 -O2 -nostdlib -ffreestanding -Wl,--no-entry \
 *       -I ../../sdk/c -o c-deny-rcpt.wasm c-deny-rcpt.c
 */
#include "sluice.h"

/* The guest owns every buffer: fixed ones are enough here. */
static char config[65536]; /* the JSON of config key "deny" */
static char rcpt[1024];    /* the recipient under consideration */
static char item[1024];    /* one decoded address of the list */
static char text[1100];    /* reply and log texts */

SLUICE_EXPORT("sluice_abi_version") int32_t sluice_abi_version(void) { return SLUICE_ABI_VERSION; }

SLUICE_EXPORT("sluice_hooks") int32_t sluice_hooks(void) { return SLUICE_HOOK_BIT(SLUICE_HOOK_RCPT); }

SLUICE_EXPORT("sluice_features") int32_t sluice_features(int32_t host) {
	(void)host;
	return SLUICE_FEATURE_INIT;
}

static int32_t append(int32_t n, const char *s, int32_t len) {
	for (int32_t i = 0; i < len && n < (int32_t)sizeof text; i++)
		text[n++] = s[i];
	return n;
}

static void log_error(const char *msg, int32_t len) { sluice_log(SLUICE_LOG_ERROR, msg, len); }

/* put_utf8 writes code point c at item[*n]; 0 when it does not fit. */
static int put_utf8(uint32_t c, int32_t *n) {
	char b[4];
	int32_t k;
	if (c < 0x80) {
		b[0] = (char)c, k = 1;
	} else if (c < 0x800) {
		b[0] = (char)(0xC0 | c >> 6), b[1] = (char)(0x80 | (c & 0x3F)), k = 2;
	} else if (c < 0x10000) {
		b[0] = (char)(0xE0 | c >> 12), b[1] = (char)(0x80 | (c >> 6 & 0x3F)), b[2] = (char)(0x80 | (c & 0x3F)), k = 3;
	} else {
		b[0] = (char)(0xF0 | c >> 18), b[1] = (char)(0x80 | (c >> 12 & 0x3F)), b[2] = (char)(0x80 | (c >> 6 & 0x3F)),
		b[3] = (char)(0x80 | (c & 0x3F)), k = 4;
	}
	if (*n + k > (int32_t)sizeof item)
		return 0;
	for (int32_t i = 0; i < k; i++)
		item[(*n)++] = b[i];
	return 1;
}

/* hex4 reads four hex digits at s[*i]. */
static int32_t hex4(const char *s, int32_t len, int32_t *i) {
	uint32_t v = 0;
	if (*i + 4 > len)
		return -1;
	for (int32_t k = 0; k < 4; k++) {
		char c = s[(*i)++];
		v <<= 4;
		if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
		else return -1;
	}
	return (int32_t)v;
}

/*
 * json_string decodes the JSON string at s[*i] (its opening quote) into
 * item and returns its length, -1 if malformed. The host writes JSON as
 * Go's encoding/json does: no whitespace, and "&", "<", ">", U+2028 and
 * U+2029 as \u escapes, so the escapes must be decoded to compare.
 */
static int32_t json_string(const char *s, int32_t len, int32_t *i) {
	int32_t n = 0;
	if (*i >= len || s[*i] != '"')
		return -1;
	for ((*i)++; *i < len;) {
		char c = s[(*i)++];
		if (c == '"')
			return n;
		if (c != '\\') {
			if (n >= (int32_t)sizeof item)
				return -1;
			item[n++] = c;
			continue;
		}
		if (*i >= len)
			return -1;
		c = s[(*i)++];
		uint32_t cp;
		switch (c) {
		case '"': case '\\': case '/': cp = (uint32_t)c; break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u': {
			int32_t hi = hex4(s, len, i);
			if (hi < 0)
				return -1;
			cp = (uint32_t)hi;
			if (hi >= 0xD800 && hi < 0xDC00 && *i + 1 < len && s[*i] == '\\' && s[*i + 1] == 'u') {
				*i += 2;
				int32_t lo = hex4(s, len, i);
				if (lo < 0xDC00 || lo >= 0xE000)
					return -1;
				cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
			}
			break;
		}
		default:
			return -1;
		}
		if (!put_utf8(cp, &n))
			return -1;
	}
	return -1;
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

/* same compares item[0:n], trimmed of spaces, with rcpt[0:m] ignoring ASCII case. */
static int same(int32_t n, int32_t m) {
	int32_t a = 0;
	while (a < n && item[a] == ' ')
		a++;
	while (n > a && item[n - 1] == ' ')
		n--;
	if (n - a != m)
		return 0;
	for (int32_t k = 0; k < m; k++)
		if (lower(item[a + k]) != lower(rcpt[k]))
			return 0;
	return 1;
}

/*
 * scan walks the deny list; with m >= 0 it reports whether rcpt[0:m] is
 * listed (1) or not (0); with m < 0 it only checks the list. -1: the list
 * is malformed (text says why).
 */
static int scan(int32_t m) {
	int32_t len = sluice_get_config(SLUICE_STR("deny"), config, sizeof config);
	if (len == SLUICE_NOT_FOUND)
		return 0; /* no list: nothing is refused */
	if (len < 0 || len > (int32_t)sizeof config) {
		log_error(SLUICE_STR("c-deny-rcpt: config key deny is over 64 KiB"));
		return -1;
	}
	int32_t i = 0;
	if (len < 2 || config[i++] != '[') {
		log_error(SLUICE_STR("c-deny-rcpt: config key deny must be a list of addresses"));
		return -1;
	}
	if (config[i] == ']')
		return 0;
	for (;;) {
		int32_t n = json_string(config, len, &i);
		if (n < 0) {
			log_error(SLUICE_STR("c-deny-rcpt: config key deny must be a list of addresses"));
			return -1;
		}
		int at = 0;
		for (int32_t k = 0; k < n; k++)
			at |= item[k] == '@';
		if (!at) {
			int32_t t = append(0, SLUICE_STR("c-deny-rcpt: config key deny: \""));
			t = append(t, item, n);
			t = append(t, SLUICE_STR("\" is not an address"));
			log_error(text, t);
			return -1;
		}
		if (m >= 0 && same(n, m))
			return 1;
		if (i < len && config[i] == ',') {
			i++;
			continue;
		}
		if (i < len && config[i] == ']')
			return 0;
		log_error(SLUICE_STR("c-deny-rcpt: config key deny must be a list of addresses"));
		return -1;
	}
}

/* sluice_init refuses the load when the list is malformed. */
SLUICE_EXPORT("sluice_init") int32_t sluice_init(void) { return scan(-1) < 0 ? 1 : 0; }

SLUICE_EXPORT("sluice_on_hook") int32_t sluice_on_hook(int32_t hook) {
	if (hook != SLUICE_HOOK_RCPT)
		return SLUICE_CONTINUE;
	int32_t m = sluice_get_prop(SLUICE_PROP_RCPT, rcpt, sizeof rcpt);
	if (m < 0 || m > (int32_t)sizeof rcpt)
		return SLUICE_CONTINUE; /* longer than any listed address */
	if (scan(m) != 1)
		return SLUICE_CONTINUE;
	int32_t t = append(0, SLUICE_STR("c-deny-rcpt: refusing <"));
	t = append(t, rcpt, m);
	t = append(t, SLUICE_STR(">"));
	sluice_log(SLUICE_LOG_INFO, text, t);
	/* A reply text is ASCII: an SMTPUTF8 address is not echoed in it. */
	int ascii = 1;
	for (int32_t k = 0; k < m; k++)
		ascii &= (unsigned char)rcpt[k] >= 0x20 && (unsigned char)rcpt[k] < 0x7f;
	t = 0;
	if (ascii) {
		t = append(t, SLUICE_STR("<"));
		t = append(t, rcpt, m);
		t = append(t, SLUICE_STR(">: "));
	}
	t = append(t, SLUICE_STR("recipient refused by policy"));
	sluice_set_reply(550, SLUICE_STR("5.7.1"), text, t);
	return SLUICE_REJECT;
}
