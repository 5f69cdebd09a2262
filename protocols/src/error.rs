//! Error kinds of the gateway and their HTTP answers.
