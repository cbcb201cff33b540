package config

import (
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Roles of accounts (docs/api.md).
const (
	RoleAdmin      = "admin"
	RoleSupervisor = "supervisor"
	RoleAgent      = "agent"
)

// Agent is an account with the agent role that takes calls from queues.
type Agent struct {
	Email string `yaml:"email"`
	// Name is shown to callers' tickets and other agents (default: the email's local part).
	Name string `yaml:"name"`
	// Password is the plain password (for development); PasswordHash a bcrypt hash. Give
	// exactly one.
	Password     string `yaml:"password"`
	PasswordHash string `yaml:"password_hash"`
	// Queues lists the queues the agent takes calls from.
	Queues []string `yaml:"queues"`
	// SIPUsername is the digest username of the agent's SIP phone when SIPSecret or
	// SIPSecretHA1 is set (default: the email).
	SIPUsername string `yaml:"sip_username"`
	// SIPSecret is the SIP phone's own plain secret (for development); SIPSecretHA1 the same
	// stored as digest HA1s. Give at most one; with neither, the phone registers with the
	// plain Password (not with a PasswordHash), under the email or its local part.
	SIPSecret    string        `yaml:"sip_secret"`
	SIPSecretHA1 *SIPSecretHA1 `yaml:"sip_secret_ha1"`
}

// SIPSecretHA1 is a SIP phone secret stored as digest HA1s, H(sip_username:realm:secret) in
// hex (RFC 7616 §3.4.2) with the realm "switchboard": MD5 (32 hex digits) and SHA-256 (64),
// one per algorithm the phone may answer with.
type SIPSecretHA1 struct {
	MD5    string `yaml:"md5"`
	SHA256 string `yaml:"sha256"`
}

// SIPUser returns the agent's SIP digest username: SIPUsername, or the email.
func (a Agent) SIPUser() string {
	if a.SIPUsername != "" {
		return a.SIPUsername
	}
	return a.Email
}

// User is an account of any role (admins, and agents in no queue).
type User struct {
	Email        string `yaml:"email"`
	Name         string `yaml:"name"`
	Password     string `yaml:"password"`
	PasswordHash string `yaml:"password_hash"`
	// Role is admin, supervisor or agent.
	Role string `yaml:"role"`
}

// Account is an agent or a user as the ticketing core stores it.
type Account struct {
	Email        string
	Name         string
	Role         string
	Password     string
	PasswordHash string
	Queues       []string
}

// Accounts returns the agents (role agent) and then the users.
func (c *Config) Accounts() []Account {
	out := make([]Account, 0, len(c.Agents)+len(c.Users))
	for _, a := range c.Agents {
		out = append(out, Account{a.Email, a.Name, RoleAgent, a.Password, a.PasswordHash, a.Queues})
	}
	for _, u := range c.Users {
		out = append(out, Account{u.Email, u.Name, u.Role, u.Password, u.PasswordHash, nil})
	}
	return out
}

// Hash returns the account's bcrypt password hash: PasswordHash when given, otherwise
// Password hashed at bcrypt's default cost.
func (a Account) Hash() ([]byte, error) {
	if a.PasswordHash != "" {
		return []byte(a.PasswordHash), nil
	}
	return bcrypt.GenerateFromPassword([]byte(a.Password), bcrypt.DefaultCost)
}

// defaultName is the local part of an email.
func defaultName(email string) string {
	local, _, _ := strings.Cut(email, "@")
	return local
}
