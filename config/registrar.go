package config

// SIPRegistrar tunes the registrar of agents' SIP phones (REGISTER, RFC 3261 §10).
type SIPRegistrar struct {
	// PhoneNetworks lists networks a phone's Contact may name even when its REGISTER came from
	// another address; calls to such a contact go to the contact itself. Outside them a
	// Contact must be the REGISTER's source address or a private (NAT'd) address, and calls go
	// to the source address. Default none.
	PhoneNetworks []Prefix `yaml:"phone_networks"`
	// MaxBindingsPerAgent caps one agent's registered contacts (default 5; 0 no limit).
	MaxBindingsPerAgent int `yaml:"max_bindings_per_agent"`
	// MaxContactsPerRegister caps the Contact headers of one REGISTER (default 5; 0 no limit).
	MaxContactsPerRegister int `yaml:"max_contacts_per_register"`
}

// Defaults of SIPRegistrar.
const (
	DefaultMaxBindingsPerAgent    = 5
	DefaultMaxContactsPerRegister = 5
)

func (r SIPRegistrar) validate(k *checker) {
	if r.MaxBindingsPerAgent < 0 {
		k.add("sip.registrar.max_bindings_per_agent", "must not be negative (0 means no limit), got %d", r.MaxBindingsPerAgent)
	}
	if r.MaxContactsPerRegister < 0 {
		k.add("sip.registrar.max_contacts_per_register", "must not be negative (0 means no limit), got %d", r.MaxContactsPerRegister)
	}
}
