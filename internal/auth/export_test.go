package auth

// Internals for the external tests (package auth_test), which cannot be
// in package auth: internal/testbed imports internal/app, which imports
// this package.
var (
	Encode            = encode
	MD5Secret         = md5Secret
	SCRAMFromPassword = scramFromPassword
	SaltedKeys        = saltedKeys
)
