using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Reflection;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace ReaperProxy.Probe.Protocol;

/// <summary>
/// Opens a WebSocket by hand (RFC 6455 §4.1) over a raw TCP or TLS connection: a correct library could
/// not be told to misbehave, and the checks need to. Every failure becomes a
/// <see cref="ConnectFailureException"/> whose message says what happened.
/// </summary>
internal static class WebSocketConnector
{
    /// <summary>RFC 6455 §1.3: appended to the key before hashing it into Sec-WebSocket-Accept.</summary>
    private const string AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    private const int MaxResponseHead = 16 * 1024;
    private const int MaxBodyRead = 4 * 1024;

    /// <summary>Headers the probe must write itself: a user value would break the upgrade.</summary>
    public static readonly string[] ReservedHeaders =
        ["Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"];

    private static readonly string s_userAgent = "reaperproxy-probe/" +
        (typeof(WebSocketConnector).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0");

    /// <summary>Connects, upgrades and validates the answer.</summary>
    /// <param name="options">Where and how.</param>
    /// <param name="tuning">How the socket is set up for the check.</param>
    /// <param name="cancellationToken">Stops the attempt (Ctrl-C).</param>
    public static async Task<WebSocketConnection> ConnectAsync(ConnectOptions options, SocketTuning tuning, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.Timeout);
        var uri = options.Uri;
        var host = uri.IdnHost;
        var port = uri.Port;
        var step = $"connecting to {host}:{port}";
        Socket? socket = null;
        Stream? stream = null;
        try
        {
            var addresses = await ResolveAsync(host, timeout.Token);
            socket = await ConnectAnyAsync(addresses, host, port, tuning.ReceiveBufferSize, timeout.Token);
            stream = new NetworkStream(socket, ownsSocket: true);
            if (uri.Scheme == "wss")
            {
                step = $"the TLS handshake with {host}:{port}";
                stream = await AuthenticateAsync(stream, host, port, options.Insecure, timeout.Token);
            }

            step = $"the WebSocket upgrade at {uri}";
            var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
            await stream.WriteAsync(Encoding.ASCII.GetBytes(Request(options, key)), timeout.Token);
            await stream.FlushAsync(timeout.Token);
            var (head, leftover) = await ReadHeadAsync(stream, uri, timeout.Token);
            var statusLine = head.Split("\r\n", 2)[0];
            var headers = ParseHeaders(head);
            var status = ParseStatus(statusLine, uri);
            if (status != 101)
            {
                var body = await FirstBodyLineAsync(stream, headers, leftover, timeout.Token);
                throw new ConnectFailureException(ConnectFailureKind.Status, StatusMessage(uri, statusLine, status, headers, body)) { StatusCode = status };
            }

            var subprotocol = Validate(headers, key, options, uri);
            var connection = new WebSocketConnection(socket, stream, leftover, statusLine, subprotocol, tuning);
            socket = null;
            stream = null;
            return connection;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ConnectFailureException(ConnectFailureKind.Timeout,
                $"no answer within {options.Timeout.TotalSeconds:0.#} s during {step} (raise --connect-timeout if the server is just slow)");
        }
        catch (Exception ex) when (ex is IOException or SocketException && !cancellationToken.IsCancellationRequested)
        {
            throw new ConnectFailureException(ConnectFailureKind.Network, $"the connection broke during {step}: {Inner(ex).Message}", ex);
        }
        finally
        {
            stream?.Dispose();
            socket?.Dispose();
        }
    }

    /// <summary>The plain-words message for a socket error while resolving or connecting.</summary>
    public static ConnectFailureException Describe(SocketException ex, string host, int port, bool resolving) => ex.SocketErrorCode switch
    {
        _ when resolving => new ConnectFailureException(ConnectFailureKind.Dns,
            $"cannot resolve the host name '{host}' ({ex.Message}): check the spelling of the URL, or your DNS", ex),
        SocketError.ConnectionRefused => new ConnectFailureException(ConnectFailureKind.Refused,
            $"connection refused by {host}:{port}: nothing is listening on that port (wrong port, or the server is not running)", ex),
        SocketError.TimedOut => new ConnectFailureException(ConnectFailureKind.Timeout,
            $"no answer from {host}:{port} (the TCP connect timed out: a firewall dropping packets, or a wrong address?)", ex),
        SocketError.HostUnreachable or SocketError.NetworkUnreachable => new ConnectFailureException(ConnectFailureKind.Network,
            $"{host}:{port} cannot be reached from here ({ex.Message})", ex),
        _ => new ConnectFailureException(ConnectFailureKind.Network, $"cannot connect to {host}:{port}: {ex.Message}", ex),
    };

    private static async Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(host.Trim('[', ']'), out var literal))
        {
            return [literal];
        }

        try
        {
            var addresses = await Dns.GetHostAddressesAsync(host, cancellationToken);
            return addresses.Length > 0
                ? addresses
                : throw new ConnectFailureException(ConnectFailureKind.Dns, $"the host name '{host}' resolves to no address");
        }
        catch (SocketException ex)
        {
            throw Describe(ex, host, 0, resolving: true);
        }
    }

    private static async Task<Socket> ConnectAnyAsync(IPAddress[] addresses, string host, int port, int? receiveBufferSize, CancellationToken cancellationToken)
    {
        SocketException? last = null;
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                if (receiveBufferSize is { } size)
                {
                    socket.ReceiveBufferSize = size;
                }

                await socket.ConnectAsync(new IPEndPoint(address, port), cancellationToken);
                return socket;
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                last = ex;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        throw Describe(last!, host, port, resolving: false);
    }

    private static async Task<Stream> AuthenticateAsync(Stream inner, string host, int port, bool insecure, CancellationToken cancellationToken)
    {
        var seen = SslPolicyErrors.None;
        X509Certificate2? certificate = null;
        var chainStatus = string.Empty;
        var ssl = new SslStream(inner, leaveInnerStreamOpen: false);
        try
        {
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = host,
                ApplicationProtocols = [SslApplicationProtocol.Http11],
                RemoteCertificateValidationCallback = (_, cert, chain, errors) =>
                {
                    seen = errors;
                    certificate = cert is null ? null : new X509Certificate2(cert);
                    chainStatus = string.Join("; ", chain?.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct() ?? []);
                    return insecure || errors == SslPolicyErrors.None;
                },
            }, cancellationToken);
            return ssl;
        }
        catch (AuthenticationException ex) when (seen != SslPolicyErrors.None)
        {
            await ssl.DisposeAsync();
            var what = new List<string>();
            if (seen.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
            {
                what.Add($"it is not issued for '{host}'");
            }

            if (seen.HasFlag(SslPolicyErrors.RemoteCertificateChainErrors))
            {
                what.Add("it is not trusted" + (chainStatus.Length > 0 ? $" ({chainStatus})" : string.Empty));
            }

            if (seen.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
            {
                what.Add("the server sent none");
            }

            var subject = certificate is null ? string.Empty : $" '{certificate.Subject}'";
            throw new ConnectFailureException(ConnectFailureKind.Tls,
                $"TLS handshake with {host}:{port} failed: the server's certificate{subject} was refused: {string.Join(", and ", what)}. " +
                "If it is a self-signed test certificate you trust, add --insecure", ex);
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException && !cancellationToken.IsCancellationRequested)
        {
            await ssl.DisposeAsync();
            throw new ConnectFailureException(ConnectFailureKind.Tls,
                $"TLS handshake with {host}:{port} failed: {Inner(ex).Message} (is this a TLS port? For a plain port use ws://)", ex);
        }
        catch
        {
            await ssl.DisposeAsync();
            throw;
        }
    }

    private static string Request(ConnectOptions options, string key)
    {
        var uri = options.Uri;
        var ours = new List<KeyValuePair<string, string>>
        {
            new("Host", uri.IsDefaultPort ? uri.IdnHost : $"{uri.IdnHost}:{uri.Port}"),
            new("User-Agent", s_userAgent),
        };
        if (options.Origin is { } origin)
        {
            ours.Add(new("Origin", origin));
        }

        var request = new StringBuilder();
        request.Append("GET ").Append(uri.PathAndQuery).Append(" HTTP/1.1\r\n");
        foreach (var (name, value) in ours.Where(h => !options.Headers.Any(u => u.Key.Equals(h.Key, StringComparison.OrdinalIgnoreCase))))
        {
            request.Append(name).Append(": ").Append(value).Append("\r\n");
        }

        foreach (var (name, value) in options.Headers)
        {
            request.Append(name).Append(": ").Append(value).Append("\r\n");
        }

        request.Append("Upgrade: websocket\r\nConnection: Upgrade\r\n");
        request.Append("Sec-WebSocket-Key: ").Append(key).Append("\r\nSec-WebSocket-Version: 13\r\n");
        if (options.Subprotocols.Count > 0)
        {
            request.Append("Sec-WebSocket-Protocol: ").Append(string.Join(", ", options.Subprotocols)).Append("\r\n");
        }

        return request.Append("\r\n").ToString();
    }

    private static async Task<(string Head, byte[] Leftover)> ReadHeadAsync(Stream stream, Uri uri, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxResponseHead];
        var filled = 0;
        int end;
        while ((end = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8)) < 0)
        {
            if (filled == buffer.Length)
            {
                throw new ConnectFailureException(ConnectFailureKind.Handshake, $"the answer to the upgrade at {uri} has over 16 KiB of headers");
            }

            var n = await stream.ReadAsync(buffer.AsMemory(filled), cancellationToken);
            if (n == 0)
            {
                var got = Encoding.ASCII.GetString(buffer, 0, filled).Split("\r\n", 2)[0];
                throw new ConnectFailureException(ConnectFailureKind.Handshake, filled == 0
                    ? $"the server at {uri.Authority} closed the connection without answering the upgrade (is it a WebSocket server? for TLS use wss://)"
                    : $"the server at {uri.Authority} closed the connection in the middle of its answer to the upgrade ('{Printable(got)}')");
            }

            filled += n;
            if (filled >= 5 && !buffer.AsSpan(0, 5).SequenceEqual("HTTP/"u8))
            {
                throw new ConnectFailureException(ConnectFailureKind.Handshake,
                    $"the server at {uri.Authority} did not answer in HTTP (it sent '{Printable(Encoding.ASCII.GetString(buffer, 0, Math.Min(filled, 40)))}'; a TLS port needs wss://)");
            }
        }

        return (Encoding.Latin1.GetString(buffer, 0, end), buffer[(end + 4)..filled]);
    }

    private static int ParseStatus(string statusLine, Uri uri)
    {
        var parts = statusLine.Split(' ', 3);
        if (parts.Length < 2 || !parts[0].StartsWith("HTTP/", StringComparison.Ordinal) || !int.TryParse(parts[1], out var status))
        {
            throw new ConnectFailureException(ConnectFailureKind.Handshake, $"the server at {uri.Authority} answered the upgrade with a malformed status line '{Printable(statusLine)}'");
        }

        return status;
    }

    private static Dictionary<string, string> ParseHeaders(string head)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in head.Split("\r\n").Skip(1))
        {
            var colon = line.IndexOf(':');
            if (colon > 0)
            {
                var name = line[..colon].Trim();
                var value = line[(colon + 1)..].Trim();
                headers[name] = headers.TryGetValue(name, out var earlier) ? earlier + ", " + value : value;
            }
        }

        return headers;
    }

    /// <summary>RFC 6455 §4.1, the client's checks of the server's handshake (points 1-6).</summary>
    private static string? Validate(Dictionary<string, string> headers, string key, ConnectOptions options, Uri uri)
    {
        string Fail(string what) => throw new ConnectFailureException(ConnectFailureKind.Handshake, $"the server at {uri} answered 101 but {what}");

        if (!headers.TryGetValue("Upgrade", out var upgrade) || !upgrade.Equals("websocket", StringComparison.OrdinalIgnoreCase))
        {
            Fail($"with 'Upgrade: {upgrade}' instead of 'Upgrade: websocket'");
        }

        if (!headers.TryGetValue("Connection", out var connection) ||
            !connection.Split(',').Any(t => t.Trim().Equals("upgrade", StringComparison.OrdinalIgnoreCase)))
        {
            Fail($"with 'Connection: {connection}', which lacks the 'Upgrade' token");
        }

        var expected = Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + AcceptGuid)));
        if (!headers.TryGetValue("Sec-WebSocket-Accept", out var accept) || accept != expected)
        {
            Fail(accept is null
                ? "without a Sec-WebSocket-Accept header (not a WebSocket server?)"
                : $"with a wrong Sec-WebSocket-Accept '{accept}' (expected '{expected}' for our key): it did not compute the RFC 6455 handshake");
        }

        if (headers.TryGetValue("Sec-WebSocket-Extensions", out var extensions) && extensions.Length > 0)
        {
            Fail($"with extensions the probe did not offer ('Sec-WebSocket-Extensions: {extensions}')");
        }

        if (headers.TryGetValue("Sec-WebSocket-Protocol", out var chosen) && chosen.Length > 0)
        {
            if (!options.Subprotocols.Contains(chosen, StringComparer.Ordinal))
            {
                Fail(options.Subprotocols.Count == 0
                    ? $"chose the subprotocol '{chosen}' although none was offered"
                    : $"chose the subprotocol '{chosen}', which is not one of those offered ({string.Join(", ", options.Subprotocols)})");
            }

            return chosen;
        }

        return null;
    }

    private static async Task<string> FirstBodyLineAsync(Stream stream, Dictionary<string, string> headers, byte[] leftover, CancellationToken cancellationToken)
    {
        // Bounded: at most 4 KiB, at most 2 s; enough for the first line of an error page.
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(TimeSpan.FromSeconds(2));
        var want = headers.TryGetValue("Content-Length", out var lengthText) && int.TryParse(lengthText, out var length) ? Math.Min(length, MaxBodyRead) : MaxBodyRead;
        var chunked = headers.TryGetValue("Transfer-Encoding", out var te) && te.Contains("chunked", StringComparison.OrdinalIgnoreCase);
        var body = new MemoryStream();
        body.Write(leftover, 0, Math.Min(leftover.Length, MaxBodyRead));
        var buffer = new byte[1024];
        try
        {
            while (body.Length < want && !ChunkedBodyComplete(body, chunked))
            {
                var n = await stream.ReadAsync(buffer, bound.Token);
                if (n == 0)
                {
                    break;
                }

                body.Write(buffer, 0, Math.Min(n, MaxBodyRead - (int)body.Length));
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && !cancellationToken.IsCancellationRequested)
        {
            // What arrived so far is what there is.
        }

        var text = Encoding.UTF8.GetString(body.GetBuffer(), 0, (int)body.Length);
        var lines = text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0);
        if (chunked)
        {
            // Skip chunk-size lines (hex digits, maybe extensions).
            lines = lines.Where(l => !IsChunkSize(l));
        }

        var first = lines.FirstOrDefault() ?? string.Empty;
        return first.Length > 200 ? first[..200] + "…" : first;
    }

    // The end of a chunked body: the last chunk, of size 0 (RFC 9112 §7.1).
    private static bool ChunkedBodyComplete(MemoryStream body, bool chunked) =>
        chunked && body.GetBuffer().AsSpan(0, (int)body.Length).IndexOf("0\r\n\r\n"u8) >= 0;

    private static string StatusMessage(Uri uri, string statusLine, int status, Dictionary<string, string> headers, string bodyLine)
    {
        var reason = statusLine.Split(' ', 3) is { Length: 3 } parts ? $"{status} {parts[2]}" : status.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var message = new StringBuilder($"the server answered the upgrade at {uri} with HTTP {reason} instead of 101 Switching Protocols");
        message.Append(bodyLine.Length > 0 ? $": {bodyLine}" : " (empty body)");
        if (status is >= 300 and < 400 && headers.TryGetValue("Location", out var location))
        {
            message.Append($" (it redirects to {location}; probe that URL instead)");
        }
        else if (status is 401 or 403)
        {
            message.Append(" (does it need credentials? pass them with -H 'Authorization: ...' or -H 'Cookie: ...')");
        }
        else if (status == 400 || status == 426)
        {
            message.Append(" (is this path a WebSocket endpoint?)");
        }

        return message.ToString();
    }

    private static bool IsChunkSize(string line)
    {
        var size = line.Split(';', 2)[0];
        return size.Length > 0 && size.All(Uri.IsHexDigit);
    }

    private static Exception Inner(Exception ex) => ex.InnerException is SocketException or IOException ? ex.InnerException : ex;

    private static string Printable(string text) => new(text.Select(c => c is >= ' ' and <= '~' ? c : '.').ToArray());
}
