using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace ReaperProxy.LoadTest;

/// <summary>
/// A raw WebSocket backend that reads slowly: each connection's upgrade request says how
/// (<c>?rate=BYTES_PER_S&amp;step=BYTES&amp;duration=SECONDS&amp;id=ID</c>). The 101 is written by hand; then it
/// takes <c>step</c> bytes at <c>rate</c>, answers Pings with unmasked Pongs, and when the connection
/// ends (or the duration is over) writes one JSON line for it on stdout. The receive buffer
/// (<c>--rcvbuf</c>) is set on the listening socket, so accepted sockets get it from the SYN on.
/// </summary>
internal static class SlowBackend
{
    private static readonly Lock s_output = new();

    public static async Task<int> RunAsync(Options options)
    {
        var listen = options.Get("listen", "127.0.0.1:15290");
        if (!IPEndPoint.TryParse(listen, out var endpoint) || !IPAddress.IsLoopback(endpoint.Address))
        {
            throw new FormatException($"--listen: '{listen}' must be a loopback IPv4 address and port");
        }

        var rcvbuf = options.Get("rcvbuf") is null ? (int?)null : options.Int("rcvbuf", 0, min: 1024, max: 64 << 20);
        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });

        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        if (rcvbuf is { } size)
        {
            listener.ReceiveBufferSize = size;
        }

        listener.Bind(endpoint);
        listener.Listen(512);
        Console.Error.WriteLine($"slow backend listening on {endpoint} (receive buffer {(rcvbuf is null ? "default" : rcvbuf)}, effective {listener.ReceiveBufferSize})");
        var connections = new List<Task>();
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var socket = await listener.AcceptAsync(stop.Token);
                connections.RemoveAll(t => t.IsCompleted);
                connections.Add(ServeAsync(socket, rcvbuf, stop.Token));
            }
        }
        catch (OperationCanceledException)
        {
            // SIGTERM.
        }

        await Task.WhenAll(connections);
        return 0;
    }

    private static async Task ServeAsync(Socket socket, int? rcvbuf, CancellationToken stop)
    {
        await Task.Yield();
        using var _ = socket;
        var clock = Stopwatch.StartNew();
        string target;
        try
        {
            using var handshake = CancellationTokenSource.CreateLinkedTokenSource(stop);
            handshake.CancelAfter(TimeSpan.FromSeconds(20));
            target = await RawWebSocket.ServerHandshakeAsync(socket, handshake.Token);
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException)
        {
            Console.Error.WriteLine($"slow backend: handshake failed: {ex.Message}");
            return;
        }

        var query = ParseQuery(target);
        var rate = Number(query, "rate", 2048);
        var step = (int)Number(query, "step", Math.Clamp(rate / 16, 1, 1024));
        var duration = TimeSpan.FromSeconds(Number(query, "duration", 30));
        var id = query.GetValueOrDefault("id", "");
        var sampler = new TcpInfoSampler(socket, clock);
        using var sampling = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var samplerTask = sampler.RunAsync(sampling.Token);
        var outcome = await PacedReader.ReadAsync(socket, rate, step, duration, client: false, clock, stop);
        await Task.Delay(20, CancellationToken.None);
        await sampling.CancelAsync();
        await samplerTask;
        var tcp = sampler.Stats(outcome.EndedAt);
        var result = SlowReader.Result(outcome.End, outcome.EndedAt, tcp, outcome) with
        {
            Id = id,
            Direction = "upload-backend",
            Url = target,
            Rate = (int)rate,
            Step = step,
            RcvbufRequested = rcvbuf,
            RcvbufEffective = socket.ReceiveBufferSize,
            DurationSeconds = duration.TotalSeconds,
            BytesRead = outcome.BytesRead,
            AchievedRate = Math.Round(outcome.BytesRead / Math.Max(outcome.EndedAt, 0.001), 1),
        };
        var line = System.Text.Json.JsonSerializer.Serialize(result, JsonContext.Default.SlowReaderResult);
        lock (s_output)
        {
            Console.Out.WriteLine(line);
            Console.Out.Flush();
        }
    }

    private static Dictionary<string, string> ParseQuery(string target)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        var mark = target.IndexOf('?', StringComparison.Ordinal);
        if (mark < 0)
        {
            return result;
        }

        foreach (var pair in target[(mark + 1)..].Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                result[Uri.UnescapeDataString(pair[..eq])] = Uri.UnescapeDataString(pair[(eq + 1)..]);
            }
        }

        return result;
    }

    private static double Number(Dictionary<string, string> query, string name, double fallback) =>
        query.TryGetValue(name, out var text) && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value > 0
            ? value
            : fallback;
}
