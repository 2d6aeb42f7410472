using System.Text.Json;
using System.Text.Json.Nodes;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>
/// A ReaperProxy configuration file under construction: YARP routes and clusters plus any <c>Reaper</c>
/// key. <see cref="Set"/> takes configuration key paths (<c>Reaper:Heartbeat:PingInterval</c>), so a test
/// can write exactly the (good or bad) value it is about.
/// </summary>
public sealed class ProxyConfig
{
    private static readonly JsonSerializerOptions s_indented = new() { WriteIndented = true };
    private readonly JsonObject _root;

    /// <summary>An empty configuration: no Reaper settings, no routes, no clusters.</summary>
    public ProxyConfig()
        : this(new JsonObject())
    {
    }

    private ProxyConfig(JsonObject root) => _root = root;

    /// <summary>One cluster <c>backend</c> and one catch-all route <c>all</c> to it.</summary>
    public static ProxyConfig CatchAll(Uri backend) =>
        new ProxyConfig().Cluster("backend", backend).Route("all", "{**catch-all}", "backend");

    /// <summary>Adds or replaces route <paramref name="id"/> matching <paramref name="path"/>.</summary>
    public ProxyConfig Route(string id, string path, string clusterId, string? policy = null)
    {
        var route = new JsonObject
        {
            ["ClusterId"] = clusterId,
            ["Match"] = new JsonObject { ["Path"] = path },
        };
        if (policy is not null)
        {
            route["Metadata"] = new JsonObject { ["ReaperPolicy"] = policy };
        }

        Object("ReverseProxy:Routes")[id] = route;
        return this;
    }

    /// <summary>
    /// Adds or replaces cluster <paramref name="id"/> with one destination. <paramref name="http2Only"/>
    /// makes YARP talk HTTP/2 with prior knowledge (h2c) to it, as an h2c-only backend needs.
    /// </summary>
    public ProxyConfig Cluster(string id, Uri address, bool http2Only = false)
    {
        var cluster = new JsonObject
        {
            ["Destinations"] = new JsonObject { ["d1"] = new JsonObject { ["Address"] = address.ToString() } },
        };
        if (http2Only)
        {
            cluster["HttpRequest"] = new JsonObject { ["Version"] = "2", ["VersionPolicy"] = "RequestVersionExact" };
        }

        Object("ReverseProxy:Clusters")[id] = cluster;
        return this;
    }

    /// <summary>Adds or replaces a named heartbeat policy under <c>Reaper:Policies</c>.</summary>
    public ProxyConfig Policy(string name, params (string Key, string? Value)[] fields)
    {
        var policy = new JsonObject();
        foreach (var (key, value) in fields)
        {
            policy[key] = value;
        }

        Object("Reaper:Policies")[name] = policy;
        return this;
    }

    /// <summary>Sets a value by configuration key path, creating the objects on the way; null writes JSON null.</summary>
    public ProxyConfig Set(string keyPath, JsonNode? value)
    {
        var (parent, key) = Split(keyPath);
        Object(parent)[key] = value;
        return this;
    }

    /// <summary>Removes a key (and everything under it) by configuration key path.</summary>
    public ProxyConfig Remove(string keyPath)
    {
        var (parent, key) = Split(keyPath);
        Object(parent).Remove(key);
        return this;
    }

    /// <summary>Whether a key path is set (to anything, JSON null included).</summary>
    public bool Has(string keyPath)
    {
        JsonNode? node = _root;
        foreach (var part in keyPath.Split(':'))
        {
            if (node is not JsonObject obj || !obj.TryGetPropertyValue(part, out node))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// For an in-process test proxy: no shutdown drain unless the test sets one, so disposing a proxy
    /// with WebSockets open does not wait out <c>Reaper:Drain:Period</c> (10 s by default).
    /// </summary>
    public ProxyConfig WithTestDefaults() => Has("Reaper:Drain") ? this : Clone().Set("Reaper:Drain:Period", "0s");

    /// <summary>An independent copy, to derive a changed configuration from a running one.</summary>
    public ProxyConfig Clone() => new((JsonObject)_root.DeepClone());

    /// <summary>The JSON file text.</summary>
    public string ToJson() => _root.ToJsonString(s_indented);

    /// <inheritdoc />
    public override string ToString() => ToJson();

    private static (string Parent, string Key) Split(string keyPath)
    {
        var colon = keyPath.LastIndexOf(':');
        return colon < 0 ? (string.Empty, keyPath) : (keyPath[..colon], keyPath[(colon + 1)..]);
    }

    private JsonObject Object(string keyPath)
    {
        var node = _root;
        if (keyPath.Length == 0)
        {
            return node;
        }

        foreach (var segment in keyPath.Split(':'))
        {
            if (node[segment] is not JsonObject child)
            {
                child = new JsonObject();
                node[segment] = child;
            }

            node = child;
        }

        return node;
    }
}
