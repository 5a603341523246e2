"""Bundled Lua filters for Fluent Bit (``filters``) and the LuaJIT harness that tests them."""
