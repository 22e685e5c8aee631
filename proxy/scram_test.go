package proxy_test

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// scramLogin logs in as user with SCRAM-SHA-256, sending the gs2
// channel-binding flag given ('n': the client cannot bind; 'y': it could,
// but believes the server cannot). libpq sends 'y' only over TLS; other
// drivers send it over plain TCP too, which is the case this reproduces.
// It returns the server's ErrorResponse if the login was refused.
func scramLogin(c net.Conn, user, password string, flag byte) (*pgproto3.ErrorResponse, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": user, "database": "postgres"}})
	if err := fe.Flush(); err != nil {
		return nil, err
	}
	var (
		nonce       = make([]byte, 18)
		gs2         = string(flag) + ",,"
		clientFirst string
		authMsg     string
		clientFinal string
	)
	rand.Read(nonce)
	clientFirst = "n=,r=" + base64.StdEncoding.EncodeToString(nonce)
	for {
		m, err := fe.Receive()
		if err != nil {
			return nil, err
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			cp := *m
			return &cp, nil
		case *pgproto3.AuthenticationSASL:
			fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte(gs2 + clientFirst)})
		case *pgproto3.AuthenticationSASLContinue:
			serverFirst := string(m.Data)
			attrs := map[string]string{}
			for _, kv := range strings.Split(serverFirst, ",") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					attrs[k] = v
				}
			}
			salt, _ := base64.StdEncoding.DecodeString(attrs["s"])
			iter, _ := strconv.Atoi(attrs["i"])
			salted, err := pbkdf2.Key(sha256.New, password, salt, iter, 32)
			if err != nil {
				return nil, err
			}
			clientKey := hmacSum(salted, "Client Key")
			stored := sha256.Sum256(clientKey)
			clientFinal = "c=" + base64.StdEncoding.EncodeToString([]byte(gs2)) + ",r=" + attrs["r"]
			authMsg = clientFirst + "," + serverFirst + "," + clientFinal
			sig := hmacSum(stored[:], authMsg)
			proof := make([]byte, len(clientKey))
			for i := range proof {
				proof[i] = clientKey[i] ^ sig[i]
			}
			fe.Send(&pgproto3.SASLResponse{Data: []byte(clientFinal + ",p=" + base64.StdEncoding.EncodeToString(proof))})
		case *pgproto3.ReadyForQuery:
			return nil, nil
		case *pgproto3.AuthenticationSASLFinal, *pgproto3.AuthenticationOk, *pgproto3.ParameterStatus, *pgproto3.BackendKeyData:
			continue
		default:
			return nil, fmt.Errorf("unexpected %T during login", m)
		}
		if err := fe.Flush(); err != nil {
			return nil, err
		}
	}
}

func hmacSum(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}
