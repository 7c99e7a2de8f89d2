# Test-only Elixir module for the trace tests on an Elixir node (never loaded by beamgate).
defmodule BgTrace.Worker do
  @moduledoc false

  def handle_call({:get, n}, _from, state), do: {:reply, n * 2, state}

  def valid?(x), do: is_integer(x)

  # A process registered as `name` calling handle_call/3 and valid?/1 every `interval` ms.
  def start_loop(name, interval) do
    pid = spawn(fn -> loop(0, interval) end)
    Process.register(pid, name)
    pid
  end

  defp loop(i, interval) do
    __MODULE__.handle_call({:get, i}, self(), %{count: i, name: "w\e[1m"})
    __MODULE__.valid?(i)

    receive do
      :stop -> :ok
    after
      interval -> loop(i + 1, interval)
    end
  end
end
