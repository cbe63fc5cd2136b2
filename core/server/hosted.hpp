// hosted: the Relays whose server hands them to the relay protocol itself.
// The wsrelay server puts the protocol (from <wsrelay/wsrelay.h>) in its
// vhosts with the entry's user pointer naming its Relay, and registers that
// Relay here; the protocol serves a registered Relay and never trusts a user
// pointer it does not find here (a foreign application's own pointer: then
// the protocol builds its Relay from the vhost's pvo). Servers may run on
// several threads of one process (tests), hence the lock.
#pragma once

namespace wsrelay::server {

class Relay;

void host_relay(Relay& relay);
void unhost_relay(Relay& relay);
// The registered Relay `user` points to, or null.
Relay* hosted_relay(const void* user);

}  // namespace wsrelay::server
