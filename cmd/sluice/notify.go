package main

import (
	"net"
	"os"
)

// sdNotify sends state ("READY=1", "STOPPING=1") to systemd's notification
// socket, $NOTIFY_SOCKET, which systemd sets for a Type=notify service;
// without it, it does nothing. An address starting with "@" is in the
// abstract namespace, which Go's unix addresses already understand.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
