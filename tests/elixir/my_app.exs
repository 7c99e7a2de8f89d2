# Test fixture run by tests/support/elixir.py: an Elixir node with a small
# GenServer registered as MyApp.Worker, and a stdin REPL that is the tests'
# independent view of the node ("ID<TAB>Elixir code" in, "ID<TAB>ok|error<TAB>inspect" out).
defmodule MyApp.Worker do
  use GenServer

  def start_link(arg), do: GenServer.start_link(__MODULE__, arg, name: __MODULE__)

  @impl true
  def init(arg), do: {:ok, %{count: 0, arg: arg, note: "elixir state"}}

  @impl true
  def handle_call(:bump, _from, state), do: {:reply, state.count + 1, %{state | count: state.count + 1}}
end

defmodule Fixture.Repl do
  def loop(binding) do
    case IO.gets("") do
      :eof -> System.halt(0)
      {:error, _} -> System.halt(0)
      line ->
        [id, code] = line |> String.trim_trailing("\n") |> String.split("\t", parts: 2)

        binding =
          try do
            {value, new_binding} = Code.eval_string(code, binding)
            IO.puts("#{id}\tok\t#{inspect(value, limit: :infinity, printable_limit: :infinity)}")
            new_binding
          rescue
            e ->
              IO.puts("#{id}\terror\t#{e |> Exception.message() |> String.replace("\n", " ")}")
              binding
          end

        loop(binding)
    end
  end
end

{:ok, _} = MyApp.Worker.start_link(:fixture)
IO.puts("READY #{node()}")
Fixture.Repl.loop([])
