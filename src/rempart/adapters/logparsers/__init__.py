"""Log parsers as data, fail2ban-style: one TOML file per parser, with the rules (regular
expressions with named groups `ip`, `login`, `protocol`, `count`) and the sample lines that its
test replays. `rempart.adapters.logparse` loads them."""
