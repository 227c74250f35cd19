package nat

import "log/slog"

// DefaultTable is the name of Condenser's table: `table ip condenser`.
const DefaultTable = "condenser"

// Config configures Open.
type Config struct {
	// Table names Condenser's nftables table (family ip); DefaultTable
	// when empty. Tests use a table of their own.
	Table string
	// Logger receives warnings (a forward policy that drops container
	// traffic, rules it cannot read back) and notes of what changed on
	// the host; slog.Default() when nil.
	Logger *slog.Logger
	// KeepIPForward leaves net.ipv4.ip_forward alone. Without it,
	// AddNetwork sets it to 1, as containers' traffic is routed through
	// the host. Tests set it: they enable forwarding on their own
	// interfaces only.
	KeepIPForward bool

	// netns, when not 0, is a network namespace's file descriptor for the
	// nftables connection (tests of what Open sees in other tables).
	netns int
}
