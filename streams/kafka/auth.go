package kafka

import (
	"fmt"
	"strings"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// SASL returns the SASL mechanism for Config.SASL by its name, as Kafka spells it
// (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; any case). PLAIN sends the password as it is,
// so it belongs on a TLS connection; SCRAM never sends it.
func SASL(mechanism, user, password string) (sasl.Mechanism, error) {
	if user == "" {
		return nil, fmt.Errorf("kafka: SASL %s needs a user name", mechanism)
	}
	switch strings.ToUpper(mechanism) {
	case "PLAIN":
		return plain.Mechanism{Username: user, Password: password}, nil
	case "SCRAM-SHA-256":
		return scramMechanism(scram.SHA256, user, password)
	case "SCRAM-SHA-512":
		return scramMechanism(scram.SHA512, user, password)
	}
	return nil, fmt.Errorf("kafka: unknown SASL mechanism %q (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", mechanism)
}

func scramMechanism(algo scram.Algorithm, user, password string) (sasl.Mechanism, error) {
	m, err := scram.Mechanism(algo, user, password)
	if err != nil {
		return nil, fmt.Errorf("kafka: SASL %s: %w", algo.Name(), err)
	}
	return m, nil
}
