-- A script using the out-of-tree extension: {"type":"hello","name":"ada"}
local greeting = require "relay.greeting"

return {
  on_open = function(session) return { type = "welcome" } end,
  hello = function(session, msg)
    return { type = "hello", text = greeting.hello(msg.name or "world"), count = greeting.count() }
  end,
}
