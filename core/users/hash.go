package users

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2id parameters for new hashes (OWASP's recommendation: 19 MiB,
// two passes, one lane).
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

var b64 = base64.RawStdEncoding

// Hash returns an argon2id PHC string for password:
// $argon2id$v=19$m=19456,t=2,p=1$SALT$HASH.
func Hash(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether password matches hash (argon2id PHC or bcrypt).
// An error means the hash itself is unusable.
func Verify(hash, password string) (bool, error) {
	if strings.HasPrefix(hash, "$argon2id$") {
		p, err := parseArgon2id(hash)
		if err != nil {
			return false, err
		}
		key := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
		return constantEq(key, p.key), nil
	}
	err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	}
	return false, err
}

// checkHash returns why hash is not a usable bcrypt or argon2id hash.
func checkHash(hash string) error {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		_, err := parseArgon2id(hash)
		return err
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return fmt.Errorf("bad bcrypt hash: %v", err)
		}
		return nil
	}
	return errors.New(`the hash is neither argon2id ("$argon2id$…") nor bcrypt ("$2b$…"); make one with "sluice user add"`)
}

// argonParams is a parsed argon2id PHC string.
type argonParams struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

// parseArgon2id parses $argon2id$v=19$m=M,t=T,p=P$SALT$HASH.
func parseArgon2id(s string) (*argonParams, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return nil, errors.New(`bad argon2id hash: want "$argon2id$v=19$m=…,t=…,p=…$salt$hash"`)
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return nil, fmt.Errorf("bad argon2id hash: version %q, want v=%d", parts[2], argon2.Version)
	}
	p := &argonParams{}
	var m, t, th uint64
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &th); err != nil {
		return nil, fmt.Errorf("bad argon2id parameters %q: want m=…,t=…,p=…", parts[3])
	}
	if m < 8 || m > 4<<20 || t < 1 || t > 100 || th < 1 || th > 255 {
		return nil, fmt.Errorf("argon2id parameters %q out of range", parts[3])
	}
	p.memory, p.time, p.threads = uint32(m), uint32(t), uint8(th)
	var err error
	if p.salt, err = b64.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return nil, errors.New("bad argon2id salt: want at least 8 bytes in unpadded base64")
	}
	if p.key, err = b64.DecodeString(parts[5]); err != nil || len(p.key) < 16 {
		return nil, errors.New("bad argon2id hash: want at least 16 bytes in unpadded base64")
	}
	return p, nil
}
