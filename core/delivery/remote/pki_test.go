package remote

import (
	"errors"

	"github.com/emersion/go-sasl"
)

// loginServer is the server side of AUTH LOGIN, which go-sasl has only a
// client for: "Username:", then "Password:".
type loginServer struct {
	step         int
	user         string
	authenticate func(user, pass string) error
}

func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		s.step++
		if len(response) > 0 { // an initial response is the user name
			s.user = string(response)
			s.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		s.user = string(response)
		s.step++
		return []byte("Password:"), false, nil
	case 2:
		return nil, true, s.authenticate(s.user, string(response))
	}
	return nil, true, errors.New("unexpected LOGIN step")
}

var _ sasl.Server = (*loginServer)(nil)
