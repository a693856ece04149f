// Command udpecho answers every UDP datagram on the port given with
// "udp <sender address>", for tests whose container image (busybox) has no
// UDP server. Built static by the Docker tests and bind-mounted in.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	c, err := net.ListenPacket("udp4", ":"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buf := make([]byte, 2048)
	for {
		_, from, err := c.ReadFrom(buf)
		if err != nil {
			os.Exit(1)
		}
		c.WriteTo([]byte("udp "+from.String()+"\n"), from)
	}
}
