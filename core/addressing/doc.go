// Package addressing resolves recipients: it decides at RCPT what a
// recipient address at a local domain is — a mailbox, an alias (expanded
// to mailboxes and remote forwards), a catch-all, an SRS bounce address
// to send back to its original sender — or that it is unknown and must be
// refused before DATA.
//
// The maps come from three text files in Postfix's formats, so that an
// operator's existing virtual_alias_maps and virtual_mailbox_maps load as
// they are:
//
//	domains    one local domain a line (further fields ignored)
//	mailboxes  one address a line, "user@domain [anything]" (virtual_mailbox_maps)
//	aliases    "source target[, target…]" (virtual(5)): source is user@domain,
//	           @domain (catch-all) or a bare user; "@a.example @b.example"
//	           aliases a whole domain
//
// Blank lines and lines starting with '#' are ignored, and a line starting
// with white space continues the one before it. A Table is one immutable
// snapshot of the three files; a Resolver holds the current one behind an
// atomic pointer, polls the files and swaps in a whole new Table when one
// changes (a file with a mistake keeps the previous Table and is logged as
// file:line: what is wrong). Lookups are map lookups: O(1) in the number
// of entries.
//
// Verification is "maps" (the mailboxes and aliases decide), "lmtp" (the
// LMTP server the domain is delivered to is asked at RCPT, answers cached
// briefly) or "none" (any local part is accepted). Subpackage srs rewrites
// the envelope sender of forwarded mail and reverses bounces.
package addressing
