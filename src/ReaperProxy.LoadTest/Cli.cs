using System.Globalization;
using System.Net;

namespace ReaperProxy.LoadTest;

/// <summary>Subcommands and their options (<c>--name value</c>).</summary>
internal static class Cli
{
    public const string Usage = """
        usage: ReaperProxy.LoadTest SUBCOMMAND [options]

          backend --urls URLS
              A minimal Kestrel WebSocket app: /ws echoes every message back as one frame (a receive is
              always pending, so it answers pings); /bulk?size=N[&frame=F] sends one binary message of N
              bytes as fast as it is taken (one frame, or frames of F bytes); /stats gives open/accepted
              counts. Runs until SIGTERM.
              --h2 PORT [--h2-connection-window BYTES] [--results FILE]: also listen on 127.0.0.1:PORT for
              cleartext HTTP/2 only (h2c, prior knowledge; WebSockets as extended CONNECT, RFC 8441).
              /slow?rate=N&step=M&duration=S&id=ID (either endpoint) reads an upload at N bytes/s, M bytes
              per receive (pings answered while a receive is pending), and appends one JSON line per
              connection to FILE (default stdout). /abort sends back half of the first message as a
              non-final frame and aborts the connection.

          idle --target ws://HOST:PORT/ws --count N [--source 127.0.0.2] [--duration 120s]
               [--connect-concurrency 50] [--connect-timeout 60s] [--ready-file FILE]
              Opens N WebSockets from source address SOURCE, keeps a receive pending on each (pings are
              answered) and sends nothing for DURATION (counted from when all are open), then closes them.
              Writes FILE once all are open. Any connection that ends before the close phase is reported.

          echo --target ws://HOST:PORT/ws --connections K --size BYTES [--duration 20s] [--warmup 3s]
               [--source 127.0.0.2[,127.0.0.3...]] [--watch-pid PID[,PID...]]
              K connections, each a closed loop: send one binary message of BYTES, wait for its echo.
              Reports messages/s and round-trip percentiles over DURATION (after WARMUP), and for each
              watched process its CPU (utime+stime, /proc) over that window, per message too.

          rate --target ws://HOST:PORT/ws --connections K --rate MSGS_PER_S --size BYTES [--duration 10s]
               [--warmup 2s] [--drain 5s] [--source ...] [--watch-pid PID[,PID...]]
              Open loop: RATE messages/s in all, spread over K connections, sent on schedule whether or not
              the echoes have come back. Latency (HdrHistogram) is taken from each message's intended send
              time, which corrects for coordinated omission; the latency from the actual send is beside it.
              Reports the achieved rate against the asked one (keptUp false, with a note, when the target
              fell behind), p50/p90/p99/p99.9/max, errors, and watched processes' CPU as echo does.

          churn --target ws://HOST:PORT/ws --concurrency C [--duration 10s] [--abort-fraction 0.1]
                [--size 64] [--max-connections 500000] [--source ...] [--watch-pid PID[,PID...]]
                [--mix KIND=W,...] [--h2-target ws://HOST:PORT/ws] [--abort-path /abort]
              C loops of: connect and upgrade, one echo of SIZE bytes, close (a share F of them aborted
              instead of a closing handshake). Reports upgrades/s, connect+upgrade p50/p90/p99, errors.
              --mix interleaves kinds by weight instead: close, abort (socket closed, no Close), rst (half
              a frame, then a TCP RST), backend-abort (ABORT-PATH: the backend sends half the echo and
              aborts), h2-close and h2-reset (over H2-TARGET, an h2c listener: half a message, then
              RST_STREAM). --max-connections N makes it exactly N cycles (unless DURATION ends first).

          soak --proxy-dll PATH [--minutes 10] [--port-base 27300] [--healthy 32] [--idle 200]
               [--silenced-every 2s] [--churn-concurrency 2] [--churn-rate 40] [--reload-every 5s]
               [--ping-interval 3s] [--pong-timeout 3s] [--source 127.0.0.1,...] [--out DIR]
              Starts a backend and the proxy (dotnet PATH) on ports BASE..BASE+3 (proxy HTTP/1.1, proxy h2c,
              admin, backend) with a config file it rewrites, and runs for MINUTES at once: HEALTHY
              connections echoing sequence-numbered messages, IDLE live ones, a client every SILENCED-EVERY
              that goes silent or freezes at a recorded instant, churn of every --mix kind at CHURN-RATE
              cycles/s, and a reload every RELOAD-EVERY (every fourth one invalid). Prints a summary
              (stderr) and its figures (stdout, JSON); exit code 0 only with no violation: no echo lost,
              reordered or corrupted, no healthy or idle connection ended, every silenced one reaped within
              PingInterval + PongTimeout + 25% of the smaller, + 10%; no churn error; every reload counted
              as applied or rejected as it should be; reaper_connections_active 0 at the end.

          slow-reader --url ws://HOST:PORT/PATH --rate BYTES_PER_S [--step BYTES] [--rcvbuf BYTES]
               [--duration 30s] [--direction download|upload] [--size BYTES] [--id ID]
              One WebSocket over a raw socket (handshake by hand) whose peer consumes slowly. download:
              this client takes STEP bytes at RATE from PATH (the backend's /bulk, asked for SIZE bytes,
              default rate*duration*2 + 48 MiB), SO_RCVBUF RCVBUF set before connect (default: not set),
              answering pings with masked pongs. upload: this client sends one SIZE-byte frame as fast as
              it is taken, to a slow-backend told rate, step and duration in the query. Reports whether the
              connection lasted DURATION, how it ended (Close code and reason, end of stream, reset, the
              peer's FIN seen in TCP_INFO), and how far apart the kernel's receive counter moved.

          slow-backend [--listen 127.0.0.1:15290] [--rcvbuf BYTES]
              A raw WebSocket backend (101 by hand) that reads each connection at the rate, step and
              duration its query asks for (?rate=&step=&duration=&id=), answers pings with unmasked pongs,
              and prints one JSON line per connection when it ends. RCVBUF is set on the listening socket.
              Runs until SIGTERM.

          runtime-stats --pid PID [--seconds 3] [--induce-gc]
              Reads another .NET process's System.Runtime counters over EventPipe and, with --induce-gc,
              the managed heap size right after a full blocking GC it triggers (as dotnet-gcdump does).

          heap-dump --pid PID [--top 25] [--dump FILE] [--keep]
              Writes a heap dump of PID (it pauses while the dump is written), and lists its reachable
              objects by type and its byte[] arrays by length: what a per-connection figure is made of.
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.Error.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }

        Options options;
        try
        {
            options = Options.Parse(args.AsSpan(1));
        }
        catch (FormatException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return 2;
        }

        try
        {
            return args[0] switch
            {
                "backend" => await Backend.RunAsync(options),
                "idle" => await IdleClient.RunAsync(options),
                "echo" => await EchoClient.RunAsync(options),
                "rate" => await RateClient.RunAsync(options),
                "churn" => await ChurnClient.RunAsync(options),
                "soak" => await Soak.SoakCommand.RunAsync(options),
                "slow-reader" => await SlowReader.RunAsync(options),
                "slow-backend" => await SlowBackend.RunAsync(options),
                "runtime-stats" => await RuntimeStats.RunAsync(options),
                "heap-dump" => await HeapDump.RunAsync(options),
                _ => UnknownCommand(args[0]),
            };
        }
        catch (FormatException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return 2;
        }
    }

    private static int UnknownCommand(string name)
    {
        Console.Error.WriteLine($"error: unknown subcommand '{name}'");
        Console.Error.WriteLine(Usage);
        return 2;
    }
}

/// <summary><c>--name value</c> pairs.</summary>
internal sealed class Options
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    public static Options Parse(ReadOnlySpan<string> args)
    {
        var options = new Options();
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                throw new FormatException($"unexpected argument '{arg}'");
            }

            var name = arg[2..];
            if (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                options._values[name] = args[++i];
            }
            else
            {
                options._flags.Add(name);
            }
        }

        return options;
    }

    public bool Flag(string name) => _flags.Contains(name);

    public string? Get(string name) => _values.GetValueOrDefault(name);

    public string Get(string name, string fallback) => _values.GetValueOrDefault(name) ?? fallback;

    public string Require(string name) => _values.GetValueOrDefault(name) ?? throw new FormatException($"--{name} is required");

    public int Int(string name, int fallback, int min = 1, int max = int.MaxValue)
    {
        if (Get(name) is not { } text)
        {
            return fallback;
        }

        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
        {
            throw new FormatException($"--{name}: '{text}' must be an integer in [{min}, {max}]");
        }

        return value;
    }

    /// <summary>A duration: <c>500ms</c>, <c>20s</c>, <c>2m</c>.</summary>
    public TimeSpan Duration(string name, TimeSpan fallback, TimeSpan? max = null)
    {
        if (Get(name) is not { } text)
        {
            return fallback;
        }

        var value = ParseDuration(text) ?? throw new FormatException($"--{name}: '{text}' is not a duration (e.g. 500ms, 20s, 2m)");
        var limit = max ?? TimeSpan.FromMinutes(15);
        if (value <= TimeSpan.Zero || value > limit)
        {
            throw new FormatException($"--{name}: '{text}' must be positive and at most {limit}");
        }

        return value;
    }

    /// <summary>A comma-separated list of IPv4 loopback addresses (127.0.0.0/8 only).</summary>
    public IPAddress[] Sources(string name)
    {
        var text = Get(name, "127.0.0.1");
        var result = new List<IPAddress>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!IPAddress.TryParse(part, out var address) || !IPAddress.IsLoopback(address))
            {
                throw new FormatException($"--{name}: '{part}' is not a loopback address (127.0.0.0/8)");
            }

            result.Add(address);
        }

        return result.Count > 0 ? [.. result] : throw new FormatException($"--{name} is empty");
    }

    private static TimeSpan? ParseDuration(string text)
    {
        (string suffix, double scale)[] units = [("ms", 0.001), ("s", 1), ("m", 60)];
        foreach (var (suffix, scale) in units)
        {
            if (text.EndsWith(suffix, StringComparison.Ordinal) &&
                double.TryParse(text[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
            {
                return TimeSpan.FromSeconds(number * scale);
            }
        }

        return null;
    }
}
