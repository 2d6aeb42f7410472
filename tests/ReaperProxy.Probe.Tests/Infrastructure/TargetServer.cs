using System.Net;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ReaperProxy.Probe.Tests.Infrastructure;

/// <summary>
/// The server the probe audits: a bare Kestrel WebSocket server on 127.0.0.1 port 0 with keep-alive pings
/// off (as many real servers run), so nothing in it notices a vanished client. <c>/ws</c> echoes every
/// message; the text message <c>close</c> makes it start a closing handshake (Close 1000) and wait,
/// unbounded, for the client's reply, as an application's <c>CloseAsync</c> does. <c>/stream</c> sends
/// 1 KiB binary messages as fast as the client takes them (16 MiB at most). Any other path answers
/// 404 with a two-line body. <see cref="OpenWebSockets"/> counts the sessions it still holds.
/// </summary>
public sealed class TargetServer : IAsyncDisposable
{
    public const string NotFoundBody = "no WebSocket here\nsecond line\n";

    private readonly WebApplication _app;
    private int _open;

    private TargetServer(WebApplication app) => _app = app;

    /// <summary>The echo endpoint, e.g. <c>ws://127.0.0.1:41234/ws</c>.</summary>
    public Uri WebSocketUri { get; private set; } = null!;

    /// <summary>The HTTP base address.</summary>
    public Uri BaseUri { get; private set; } = null!;

    /// <summary>WebSocket sessions accepted and not yet over.</summary>
    public int OpenWebSockets => Volatile.Read(ref _open);

    /// <summary>Starts the server, on TLS with a fresh self-signed certificate when <paramref name="tls"/>.</summary>
    public static async Task<TargetServer> StartAsync(bool tls = false)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Logging.ClearProviders();
        var certificate = tls ? SelfSignedCertificate() : null;
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
        {
            if (certificate is not null)
            {
                listen.UseHttps(certificate);
            }
        }));
        var app = builder.Build();
        var server = new TargetServer(app);
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.Zero });
        app.Map("/ws", async (HttpContext context) =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }

            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            Interlocked.Increment(ref server._open);
            try
            {
                await ServeAsync(socket, context.RequestAborted);
            }
            finally
            {
                Interlocked.Decrement(ref server._open);
            }
        });
        app.Map("/stream", async (HttpContext context) =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }

            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            Interlocked.Increment(ref server._open);
            try
            {
                await StreamAsync(socket, context.RequestAborted);
            }
            finally
            {
                Interlocked.Decrement(ref server._open);
            }
        });
        app.MapFallback(async context =>
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            await context.Response.WriteAsync(NotFoundBody);
        });

        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
        var port = new Uri(address).Port;
        server.BaseUri = new Uri($"{(tls ? "https" : "http")}://127.0.0.1:{port}/");
        server.WebSocketUri = new Uri($"{(tls ? "wss" : "ws")}://127.0.0.1:{port}/ws");
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        using (var grace = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
        {
            await _app.StopAsync(grace.Token);
        }

        await _app.DisposeAsync();
    }

    private static async Task ServeAsync(WebSocket socket, CancellationToken aborted)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, aborted);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseOutputAsync(result.CloseStatus ?? WebSocketCloseStatus.NormalClosure, result.CloseStatusDescription, aborted);
                    return;
                }

                if (result.MessageType == WebSocketMessageType.Text && result.EndOfMessage && Encoding.UTF8.GetString(buffer, 0, result.Count) == "close")
                {
                    // Waits for the client's Close for as long as the connection lasts: no timeout of its own.
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", aborted);
                    return;
                }

                await socket.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, aborted);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            // The client went away (or the proxy ended the connection).
        }
    }

    // A server that streams to its clients (prices, logs): 1 KiB messages as fast as the client takes them, 16 MiB at most.
    private static async Task StreamAsync(WebSocket socket, CancellationToken aborted)
    {
        var message = new byte[1024];
        try
        {
            for (var i = 0; i < 16 * 1024; i++)
            {
                await socket.SendAsync(message, WebSocketMessageType.Binary, endOfMessage: true, aborted);
            }

            await socket.ReceiveAsync(message, aborted);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            // The client went away (or the proxy ended the connection).
        }
    }

    private static X509Certificate2 SelfSignedCertificate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=reaperproxy-probe test", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pfx), null);
    }
}
