//go:build !linux

package netplane

// Kernel applies states to one nftables table. Outside Linux every method
// returns ErrUnsupported.
type Kernel struct{ table string }

// NewKernel returns a Kernel for the table name.
func NewKernel(table string) *Kernel { return &Kernel{table: table} }

// Table is the name of the table.
func (k *Kernel) Table() string { return k.table }

// Probe returns ErrUnsupported.
func (k *Kernel) Probe() error { return ErrUnsupported }

// Apply returns ErrUnsupported.
func (k *Kernel) Apply(State) error { return ErrUnsupported }

// Remove returns ErrUnsupported.
func (k *Kernel) Remove() error { return ErrUnsupported }

// Read returns ErrUnsupported.
func (k *Kernel) Read() (State, error) { return State{}, ErrUnsupported }
