using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;

namespace ReaperProxy.LoadTest;

/// <summary>How one churn connection ends.</summary>
internal enum ChurnKind
{
    /// <summary>HTTP/1.1 Upgrade, one echo, a closing handshake.</summary>
    Close,

    /// <summary>HTTP/1.1, one echo, the client's socket closed without a Close frame (what a killed client does).</summary>
    Abort,

    /// <summary>HTTP/1.1 by hand, one echo, then half of a frame and a TCP RST (SO_LINGER 0): a client that dies mid-message.</summary>
    Rst,

    /// <summary>HTTP/1.1 to the backend's <c>/abort</c>: it answers with the first fragment of the echo and aborts its connection.</summary>
    BackendAbort,

    /// <summary>HTTP/2 extended CONNECT, one echo, a closing handshake.</summary>
    H2Close,

    /// <summary>HTTP/2, one echo, the first fragment of a message, then the stream reset (RST_STREAM), the connection kept.</summary>
    H2Reset,
}

/// <summary>Where churn connections go.</summary>
/// <param name="Http1">ws://HOST:PORT/PATH for the HTTP/1.1 kinds (the backend's echo).</param>
/// <param name="Http2">The same over an h2c listener, for the HTTP/2 kinds; null when there is none.</param>
/// <param name="BackendAbort">ws://HOST:PORT/abort (the backend's aborting endpoint), for <see cref="ChurnKind.BackendAbort"/>.</param>
internal sealed record ChurnTargets(Uri Http1, Uri? Http2, Uri BackendAbort);

/// <summary>
/// One churn connection of a given kind, from connect to its end; throws (naming the step in
/// <see cref="ChurnCycle.Step"/>) when the proxy does something the kind does not expect: an echo that
/// does not match, no end after the backend aborted, a hang (every step is bounded by the token).
/// Shared by the <c>churn</c> and <c>soak</c> subcommands.
/// </summary>
internal sealed class ChurnCycle(ChurnTargets targets, IPAddress source, HttpMessageInvoker http1, HttpMessageInvoker? http2, int size)
{
    private readonly byte[] _payload = RandomNumberGenerator.GetBytes(size);
    private readonly byte[] _received = new byte[Math.Max(size, 1024)];

    /// <summary>What the last <see cref="RunAsync"/> was doing (for error reports).</summary>
    public string Step { get; private set; } = "connect";

    /// <summary>Parses <c>close=2,abort=1,rst=1,backend-abort=1,h2-close=1,h2-reset=1</c> into a schedule that interleaves the kinds by weight.</summary>
    public static ChurnKind[] ParseMix(string text)
    {
        var weights = new List<(ChurnKind Kind, int Weight)>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var pair = part.Split('=', 2);
            var kind = pair[0] switch
            {
                "close" => ChurnKind.Close,
                "abort" => ChurnKind.Abort,
                "rst" => ChurnKind.Rst,
                "backend-abort" => ChurnKind.BackendAbort,
                "h2-close" => ChurnKind.H2Close,
                "h2-reset" => ChurnKind.H2Reset,
                _ => throw new FormatException($"--mix: unknown kind '{pair[0]}' (close, abort, rst, backend-abort, h2-close, h2-reset)"),
            };
            var weight = pair.Length == 1 ? 1 : int.TryParse(pair[1], out var w) && w is >= 0 and <= 100 ? w : throw new FormatException($"--mix: '{part}': the weight must be an integer in [0, 100]");
            weights.Add((kind, weight));
        }

        // Round-robin over the kinds, each taken while it has weight left: close=2,abort=1 -> close, abort, close.
        var schedule = new List<ChurnKind>();
        var left = weights.Select(w => w.Weight).ToArray();
        while (left.Any(l => l > 0))
        {
            for (var i = 0; i < weights.Count; i++)
            {
                if (left[i]-- > 0)
                {
                    schedule.Add(weights[i].Kind);
                }
            }
        }

        return schedule.Count > 0 ? [.. schedule] : throw new FormatException("--mix: no kind with a weight above 0");
    }

    public static string Name(ChurnKind kind) => kind switch
    {
        ChurnKind.Close => "close",
        ChurnKind.Abort => "abort",
        ChurnKind.Rst => "rst",
        ChurnKind.BackendAbort => "backend-abort",
        ChurnKind.H2Close => "h2-close",
        _ => "h2-reset",
    };

    /// <summary>Runs one connection of <paramref name="kind"/>; returns the Stopwatch ticks from the start of the connect to the upgrade's end.</summary>
    public async Task<long> RunAsync(ChurnKind kind, CancellationToken cancellationToken)
    {
        Step = "connect";
        if (kind == ChurnKind.Rst)
        {
            return await RstAsync(cancellationToken);
        }

        var h2 = kind is ChurnKind.H2Close or ChurnKind.H2Reset;
        var invoker = h2 ? http2 ?? throw new InvalidOperationException("HTTP/2 kinds need an h2c target") : http1;
        var uri = kind == ChurnKind.BackendAbort ? targets.BackendAbort : h2 ? targets.Http2! : targets.Http1;
        using var socket = Net.NewClient(h2);
        var started = Stopwatch.GetTimestamp();
        await socket.ConnectAsync(uri, invoker, cancellationToken);
        var upgraded = Stopwatch.GetTimestamp() - started;

        Step = "echo";
        await socket.SendAsync(_payload, WebSocketMessageType.Binary, endOfMessage: true, cancellationToken);
        if (kind == ChurnKind.BackendAbort)
        {
            await ExpectBackendAbortAsync(socket, cancellationToken);
            return upgraded;
        }

        await ExpectEchoAsync(socket, cancellationToken);
        switch (kind)
        {
            case ChurnKind.Abort:
                socket.Abort();
                break;
            case ChurnKind.H2Reset:
                Step = "reset";
                await socket.SendAsync(_payload.AsMemory(0, Math.Max(1, size / 2)), WebSocketMessageType.Binary, endOfMessage: false, cancellationToken);
                socket.Abort();
                break;
            default:
                Step = "close";
                await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", cancellationToken);
                break;
        }

        return upgraded;
    }

    private async Task ExpectEchoAsync(ClientWebSocket socket, CancellationToken cancellationToken)
    {
        var got = 0;
        ValueWebSocketReceiveResult result;
        do
        {
            result = await socket.ReceiveAsync(_received.AsMemory(got), cancellationToken);
            got += result.Count;
        }
        while (!result.EndOfMessage && got < _received.Length && result.MessageType != WebSocketMessageType.Close);

        if (result.MessageType == WebSocketMessageType.Close || got != size || !_received.AsSpan(0, size).SequenceEqual(_payload))
        {
            throw new WebSocketException(WebSocketError.InvalidState, $"the echo did not match ({got} of {size} bytes, {result.MessageType})");
        }
    }

    // The backend sends the first half of the echo as a non-final frame and aborts: the client must see
    // that fragment and then the end of the WebSocket (the proxy's Close 1001, or its connection ending).
    private async Task ExpectBackendAbortAsync(ClientWebSocket socket, CancellationToken cancellationToken)
    {
        Step = "backend-abort";
        var got = 0;
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(_received.AsMemory(), cancellationToken);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }

                got += result.Count;
                if (result.EndOfMessage)
                {
                    throw new WebSocketException(WebSocketError.InvalidState, $"a whole message of {got} bytes arrived although the backend aborted mid-message");
                }
            }
        }
        catch (WebSocketException ex) when (ex.WebSocketErrorCode == WebSocketError.ConnectionClosedPrematurely)
        {
            // The connection ended without a Close: also an end.
        }
    }

    private async Task<long> RstAsync(CancellationToken cancellationToken)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var started = Stopwatch.GetTimestamp();
        socket.Bind(new IPEndPoint(source, 0));
        await socket.ConnectAsync(IPAddress.Parse(targets.Http1.Host), targets.Http1.Port, cancellationToken);
        await RawWebSocket.ClientHandshakeAsync(socket, targets.Http1, cancellationToken);
        var upgraded = Stopwatch.GetTimestamp() - started;

        Step = "echo";
        var key = RandomNumberGenerator.GetBytes(4);
        await RawWebSocket.SendAllAsync(socket, RawWebSocket.DataFrameHeader(size, key), cancellationToken);
        await RawWebSocket.SendAllAsync(socket, RawWebSocket.Mask(_payload, key), cancellationToken);
        var (opcode, frame) = await RawWebSocket.ReadFrameAsync(socket, _received, cancellationToken);
        if (opcode != RawWebSocket.Binary || frame != size || !_received.AsSpan(0, size).SequenceEqual(_payload))
        {
            throw new IOException($"the echo did not match ({frame} of {size} bytes)");
        }

        // Half a frame (the header announces twice what follows), then a reset instead of the rest.
        Step = "rst";
        await RawWebSocket.SendAllAsync(socket, RawWebSocket.DataFrameHeader(2L * size, key), cancellationToken);
        await RawWebSocket.SendAllAsync(socket, RawWebSocket.Mask(_payload, key), cancellationToken);
        socket.LingerState = new LingerOption(enable: true, seconds: 0);
        socket.Close();
        return upgraded;
    }
}
