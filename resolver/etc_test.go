package resolver

import "testing"

func TestParseExtraHost(t *testing.T) {
	for _, c := range []struct {
		in, name, ip string
		ok           bool
	}{
		{"db:10.0.0.2", "db", "10.0.0.2", true},
		{"db=10.0.0.2", "db", "10.0.0.2", true},
		{"v6:fd00::1", "v6", "fd00::1", true},
		{"v6=[fd00::1]", "v6", "fd00::1", true},
		{"gw:host-gateway", "gw", "invalid IP", true},
		{"db", "", "", false},
		{"d b:10.0.0.1", "", "", false},
		{"db:nope", "", "", false},
	} {
		name, ip, err := ParseExtraHost(c.in)
		if (err == nil) != c.ok || (c.ok && (name != c.name || ip.String() != c.ip)) {
			t.Errorf("ParseExtraHost(%q) = %q %v %v", c.in, name, ip, err)
		}
	}
}
