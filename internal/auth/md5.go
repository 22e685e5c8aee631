package auth

import (
	"crypto/md5"
	"encoding/hex"
)

// md5Secret is PostgreSQL's md5 secret of a password: "md5" + md5(password + user).
func md5Secret(password, user string) string {
	h := md5.Sum([]byte(password + user))
	return "md5" + hex.EncodeToString(h[:])
}

// md5Response is what a client sends for an md5 secret and a server's
// salt: "md5" + md5(hex digits of the secret + salt).
func md5Response(secret string, salt [4]byte) string {
	h := md5.New()
	h.Write([]byte(secret[3:]))
	h.Write(salt[:])
	return "md5" + hex.EncodeToString(h.Sum(nil))
}
