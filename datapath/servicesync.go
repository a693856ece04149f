package datapath

import "errors"

// SyncServices makes the datapath's load-balanced services exactly t's.
func (i *Instance) SyncServices(t ServiceTable) error {
	for _, s := range t.Services {
		if err := s.Validate(); err != nil {
			return err
		}
	}
	return errors.New("service load balancing: not built yet")
}
