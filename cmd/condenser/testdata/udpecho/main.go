// Command udpecho answers every UDP datagram on the port given as its
// argument with the same bytes: the tests' UDP server inside a container
// (busybox has none). Built static by the tests.
package main

import (
	"net"
	"os"
)

func main() {
	c, err := net.ListenPacket("udp", ":"+os.Args[1])
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("listening\n")
	buf := make([]byte, 2048)
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			os.Exit(1)
		}
		c.WriteTo(buf[:n], addr)
	}
}
