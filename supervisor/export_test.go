package supervisor

// SpareID returns the id of the ready spare shim, "" when there is none.
func SpareID(s *Supervisor) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spare == nil {
		return ""
	}
	return s.spare.id
}

// ForgetSpare makes the supervisor lose its spare shim, as a daemon killed
// with one would.
func ForgetSpare(s *Supervisor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spare = nil
}
