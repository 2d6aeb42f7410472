using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ReaperProxy.EchoBackend;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>Which protocol a <see cref="TestBackend"/> speaks on its one cleartext port.</summary>
public enum BackendProtocol
{
    /// <summary>HTTP/1.1 only (WebSockets by Upgrade).</summary>
    Http1,

    /// <summary>HTTP/2 with prior knowledge only (h2c; WebSockets by extended CONNECT).</summary>
    H2c,
}

/// <summary>What a <see cref="TestBackend"/> saw of one request.</summary>
public sealed record RecordedRequest(string Method, string Path, string Protocol, bool IsWebSocket, IReadOnlyDictionary<string, string> Headers);

/// <summary>Options for <see cref="TestBackend.StartAsync"/>.</summary>
public sealed record TestBackendOptions
{
    /// <summary>HTTP/1.1 (default) or h2c-only.</summary>
    public BackendProtocol Protocol { get; init; } = BackendProtocol.Http1;

    /// <summary>Appears in <c>/hello</c> answers, to tell backends apart.</summary>
    public string Name { get; init; } = "backend";

    /// <summary>The server's own WebSocket keep-alive pings; off by default so tests see only what they send.</summary>
    public TimeSpan WebSocketKeepAlive { get; init; } = TimeSpan.Zero;

    /// <summary>Maps extra endpoints (e.g. a WebSocket endpoint that misbehaves on purpose) beside the standard ones.</summary>
    public Action<WebApplication>? Map { get; init; }

    /// <summary>The loopback address it listens on (127.0.0.1 unless a test needs one of its own, e.g. 127.0.0.9).</summary>
    public IPAddress Address { get; init; } = IPAddress.Loopback;

    /// <summary>Where the backend's logs go; nowhere when null.</summary>
    public ITestOutputHelper? Output { get; init; }
}

/// <summary>
/// An in-process Kestrel backend on 127.0.0.1, port 0. Endpoints: <c>GET /hello</c> (names the backend and
/// the protocol it saw), <c>POST /post</c> (echoes the body), <c>/echo</c> (WebSocket echo via
/// <see cref="EchoApp.EchoAsync"/>); any other path is 404. Every request is recorded in <see cref="Requests"/>.
/// </summary>
public sealed class TestBackend : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();
    private int _openWebSockets;

    private TestBackend(WebApplication app, TestBackendOptions options)
    {
        _app = app;
        Options = options;
    }

    /// <summary>The options it was started with.</summary>
    public TestBackendOptions Options { get; }

    /// <summary>The base address, e.g. <c>http://127.0.0.1:41234/</c>.</summary>
    public Uri BaseUri { get; private set; } = null!;

    /// <summary>Every request seen so far, in arrival order.</summary>
    public IReadOnlyList<RecordedRequest> Requests => [.. _requests];

    /// <summary>WebSocket sessions accepted on <c>/echo</c> and not yet finished.</summary>
    public int OpenWebSockets => Volatile.Read(ref _openWebSockets);

    /// <summary>The requests seen for one path.</summary>
    public IReadOnlyList<RecordedRequest> RequestsFor(string path) => [.. _requests.Where(r => r.Path == path)];

    /// <summary>Starts a backend.</summary>
    public static async Task<TestBackend> StartAsync(TestBackendOptions? options = null)
    {
        options ??= new TestBackendOptions();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            // No file watching: many of these run at once in the test process.
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Logging.ClearProviders();
        if (options.Output is { } output)
        {
            builder.Logging.AddProvider(new XunitLoggerProvider(output, options.Name));
        }

        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(options.Address, 0, listen =>
            listen.Protocols = options.Protocol == BackendProtocol.H2c ? HttpProtocols.Http2 : HttpProtocols.Http1));

        var app = builder.Build();
        var backend = new TestBackend(app, options);

        // Before the recorder, so that it can tell WebSocket requests (HTTP/1.1 Upgrade or HTTP/2 CONNECT) apart.
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = options.WebSocketKeepAlive });
        app.Use((context, next) =>
        {
            backend._requests.Enqueue(new RecordedRequest(
                context.Request.Method,
                context.Request.Path.Value ?? string.Empty,
                context.Request.Protocol,
                context.WebSockets.IsWebSocketRequest,
                context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase)));
            return next(context);
        });
        app.MapGet("/hello", (HttpContext context) => $"hello from {options.Name} ({context.Request.Protocol})");
        app.MapPost("/post", async (HttpContext context) =>
        {
            using var reader = new StreamReader(context.Request.Body);
            return Results.Text(await reader.ReadToEndAsync(context.RequestAborted));
        });
        app.Map("/echo", async (HttpContext context) =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }

            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            Interlocked.Increment(ref backend._openWebSockets);
            try
            {
                await EchoApp.EchoAsync(socket, context.RequestAborted);
            }
            finally
            {
                Interlocked.Decrement(ref backend._openWebSockets);
            }
        });
        options.Map?.Invoke(app);

        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
        backend.BaseUri = new Uri(address.TrimEnd('/') + "/");
        return backend;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        // Bounded: connections still open after a short grace period are aborted.
        using (var grace = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
        {
            await _app.StopAsync(grace.Token);
        }

        await _app.DisposeAsync();
    }
}
